#!/usr/bin/env bash
# Session 15, call 1 (carry ["build-carry/s15a","build-carry/s15b","build-carry/s15m",".gpucall"]):
# s15a (softcap fixed max vs main), then s15b (decode cluster vs main); main = ce3b67e (s15m).
cd "$(dirname "$0")/.." || exit 1
CAP=300 bash .gpucall/s15a.sh; echo "== s15b"; bash .gpucall/s15b.sh
