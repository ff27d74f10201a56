// onnxruntime-node's side of bench/onnx-speed:
//   node ort_speed.js MODEL.onnx SIZE BATCH THREADS REPS
// Runs the model's forward pass on a (BATCH, 3, SIZE, SIZE) float32 input with THREADS
// intra-op threads and all graph optimizations: 2 untimed runs, then REPS timed ones;
// prints `best: IPS images/s (...)` from the median.
// NODE_PATH must reach onnxruntime-node (tests/cli_onnx.sh installs it into the build tree).
'use strict';
const ort = require('onnxruntime-node');

async function main() {
    const [model, size, batch, threads, reps] = process.argv.slice(2).map((v, i) => i ? Number(v) : v);
    const session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all'});
    const shape = [batch, 3, size, size];
    const data = new Float32Array(shape.reduce((a, b) => a * b));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 0.5;
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, shape)};
    const times = [];
    for (let r = 0; r < reps + 2; r++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        if (r >= 2) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)];
    console.log(`best: ${(batch / med).toFixed(2)} images/s (onnxruntime-node, ${threads} ` +
                `threads, ${(1e3 * med).toFixed(1)} ms per batch)`);
}

main().catch(e => { console.error('ort_speed: ' + e.message); process.exit(1); });
