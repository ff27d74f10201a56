// Run an ONNX model on onnxruntime-node: node ort_run.js MODEL.onnx IN.npy OUT.npy
// IN.npy: float32 (N, C, H, W), fed to the graph's single input; OUT.npy: its first output.
// NODE_PATH must reach onnxruntime-node (tests/cli_onnx.sh installs it into the build tree).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
    const buf = fs.readFileSync(path);
    if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(path + ': not a .npy file');
    const major = buf[6];
    const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + hlen;
    const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
    if (!header.includes("'<f4'") || !header.includes("'fortran_order': False"))
        throw new Error(path + ': expected C-order float32');
    const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',')
        .map(s => s.trim()).filter(s => s.length).map(Number);
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
    return {shape, data};
}

function writeNpy(path, shape, data) {
    const dims = shape.length === 1 ? shape[0] + ',' : shape.join(', ');
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
    dict = dict.padEnd(total - 10 - 1, ' ') + '\n';
    const head = Buffer.alloc(10);
    head.write('\x93NUMPY', 0, 'latin1');
    head[6] = 1; head[7] = 0;
    head.writeUInt16LE(total - 10, 8);
    fs.writeFileSync(path, Buffer.concat([head, Buffer.from(dict, 'latin1'),
        Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
    const [model, inPath, outPath] = process.argv.slice(2);
    const x = readNpy(inPath);
    const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1});
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape)};
    const out = (await session.run(feeds))[session.outputNames[0]];
    writeNpy(outPath, out.dims, out.data);
}

main().catch(e => { console.error('ort_run: ' + e.message); process.exit(1); });
