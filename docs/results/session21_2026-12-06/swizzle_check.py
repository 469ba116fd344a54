# Brute-force check of SwizzledStateRows (kernels/decode_attention_mma.cuh) for the three geometries of the
# tensor-core decode kernel: every row's index map is a permutation; each 8-lane phase of the epilogue's float4
# stores hits 8 different bank groups; a warp's 32 consecutive-d reads (write_block_state) hit 32 banks.
def idx(r, d, D):
    c = d // 4
    return r * D + 4 * (c ^ (2 * ((c >> 3) & 3) + (r & 1))) + d % 4

for D, kU, units in [(64, 8, 1), (128, 8, 2), (128, 16, 1)]:  # bf16 and 8-bit D = 64; bf16 D = 128; 8-bit D = 128
    for r in range(64):
        assert {idx(r, d, D) for d in range(D)} == set(range(r * D, (r + 1) * D))
    for base in range(0, 64, 16):
        for rr in range(2):
            for u in range(units):
                for k in range(kU // 2):
                    for p in range(4):  # lanes 8p .. 8p + 7: g = 2p, 2p + 1, t = 0..3
                        groups = {(idx(base + lane // 4 + 8 * rr, (2 * (lane % 4) + 8 * u) * kU + 4 * k, D) // 4) % 8
                                  for lane in range(8 * p, 8 * p + 8)}
                        assert len(groups) == 8, (D, kU, base, rr, u, k, p)
    for r in range(64):
        for d0 in range(0, D, 32):
            assert len({idx(r, d, D) % 32 for d in range(d0, d0 + 32)}) == 32
    print(f"D={D} kU={kU} units={units}: conflict-free")
