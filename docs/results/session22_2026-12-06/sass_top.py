# Nsight Compute source-page CSV (--page source --print-source sass --csv) -> samples per SASS instruction and stall reason.
# Usage: python3 sass_top.py <(zcat call_a/src_1.csv.gz)
import csv,sys
rows=[]; hdr=None
for line in open(sys.argv[1]):
    if line.startswith('"Address"'): hdr=next(csv.reader([line])); continue
    if hdr and line.startswith('"0x'):
        r=next(csv.reader([line])); rows.append(dict(zip(hdr,r)))
stalls=[h for h in hdr if h.startswith('stall_') and '(Not' not in h]
tot=sum(int(r['Warp Stall Sampling (All Samples)']) for r in rows)
print("instructions",len(rows),"samples",tot)
agg={s:sum(int(r[s]) for r in rows) for s in stalls}
print(sorted(((v,k) for k,v in agg.items()),reverse=True)[:8])
# print each instruction with samples, in order, compact
for i,r in enumerate(rows):
    n=int(r['Warp Stall Sampling (All Samples)'])
    top=sorted(((int(r[s]),s[6:]) for s in stalls),reverse=True)[:2]
    print(f"{i:4d} {n:5d} {r['Instructions Executed']:>7} {r['Source'].strip()[:60]:60s} {top[0] if top[0][0] else ''} {top[1] if top[1][0] else ''}")
