"""onnx.checker.check_model(full_check=True) on each ONNX file given; exits 1 on the first
failure, naming the file and the checker's message."""
import sys

import onnx

for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:  # the checker raises ValidationError, shape inference others
        print(f"{path}: onnx checker: {e}")
        sys.exit(1)
print(f"onnx checker (full_check): {len(sys.argv) - 1} models pass")
