// Run a TF.js layers-model from disk on a .npy input, with TensorFlow.js itself (its pure
// JavaScript CPU backend): node tfjs_run.js MODEL_DIR IN.npy OUT.npy
// IN.npy: float32 (N, C, H, W), transposed to TF.js' (N, H, W, C); OUT.npy: the model's
// output with the last layer's activation (softmax) removed, i.e. the logits that
// `parcnn predict --npy-out` writes for the converted model. NODE_PATH must reach
// @tensorflow/tfjs (scripts/get-mobilenetv2.sh installs it).
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function readNpy(file) {
    const buf = fs.readFileSync(file);
    if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not a .npy file');
    const major = buf[6];
    const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + hlen;
    const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
    if (!header.includes("'<f4'") || !header.includes("'fortran_order': False"))
        throw new Error(file + ': expected C-order float32');
    const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',')
        .map(s => s.trim()).filter(s => s.length).map(Number);
    const bytes = buf.subarray(start);
    return {shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))};
}

function writeNpy(file, shape, data) {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
               (shape.length === 1 ? shape[0] + ',' : shape.join(', ')) + '), }';
    const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
    dict = dict.padEnd(total - 11, ' ') + '\n';
    const head = Buffer.alloc(10);
    head.write('\x93NUMPY', 0, 'latin1');
    head[6] = 1;
    head.writeUInt16LE(total - 10, 8);
    fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'),
        Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

// The layers-model from MODEL_DIR, its output layer's activation set to linear.
async function loadLogitsModel(dir) {
    const spec = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const topo = spec.modelTopology;
    const config = (topo.model_config || topo).config;
    const outName = config.output_layers[0][0];
    const outLayer = config.layers.find(l => l.name === outName);
    if (outLayer.config.activation) outLayer.config.activation = 'linear';
    const specs = [], shards = [];
    for (const group of spec.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
    }
    const all = Buffer.concat(shards);
    const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
    return tf.loadLayersModel(tf.io.fromMemory({modelTopology: topo, weightSpecs: specs, weightData}));
}

async function main() {
    const [dir, inPath, outPath] = process.argv.slice(2);
    if (!outPath) throw new Error('usage: node tfjs_run.js MODEL_DIR IN.npy OUT.npy');
    await tf.setBackend('cpu');
    const model = await loadLogitsModel(dir);
    const x = readNpy(inPath);
    if (x.shape.length !== 4) throw new Error(inPath + ': expected (N, C, H, W)');
    const y = tf.tidy(() => model.predict(tf.tensor4d(x.data, x.shape).transpose([0, 2, 3, 1])));
    writeNpy(outPath, y.shape, await y.data());
}

main().catch(e => { console.error('tfjs_run: ' + e.message); process.exit(1); });
