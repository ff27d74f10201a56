"""Compare two arrays: python3 compare.py A.npy B.npy TOL [LABEL]
Prints the relative max-abs error max|a - b| / max|b| and exits 1 when it exceeds TOL
or the shapes differ. TOL 0 asks for bit-identical arrays."""
import sys

import numpy as np

a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
tol = float(sys.argv[3])
label = sys.argv[4] if len(sys.argv) > 4 else sys.argv[1]
if a.shape != b.shape:
    print(f"{label}: shapes differ: {a.shape} vs {b.shape}")
    sys.exit(1)
if tol == 0:
    same = a.tobytes() == b.tobytes()
    print(f"{label}: {'bit-identical' if same else 'NOT bit-identical'}")
    sys.exit(0 if same else 1)
err = float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))
print(f"{label}: relative max-abs error {err:.3g} (tolerance {tol:g})")
sys.exit(0 if err <= tol else 1)
