// Turn a model that nsfwjs bundles as JavaScript modules back into an ordinary TF.js
// layers-model folder: node tfjs_unbundle.js PACKAGE_MODEL_DIR OUT_DIR
// nsfwjs ships dist/models/NAME/model.min.js (exporting {modelTopology, weightsManifest})
// and group1-shardKofN.min.js (each exporting its shard's bytes as base64). OUT_DIR gets
// model.json and the shards as the binary files its weightsManifest names.
'use strict';
const fs = require('fs');
const path = require('path');

function main() {
    const [src, out] = process.argv.slice(2);
    if (!src || !out) throw new Error('usage: node tfjs_unbundle.js PACKAGE_MODEL_DIR OUT_DIR');
    const model = require(path.resolve(src, 'model.min.js'));
    if (!model.modelTopology || !Array.isArray(model.weightsManifest))
        throw new Error(src + '/model.min.js: no modelTopology and weightsManifest');
    fs.mkdirSync(out, {recursive: true});
    for (const group of model.weightsManifest)
        for (const shard of group.paths) {
            const b64 = require(path.resolve(src, shard + '.min.js'));
            if (typeof b64 !== 'string') throw new Error(src + '/' + shard + '.min.js: not a base64 string');
            fs.writeFileSync(path.join(out, shard), Buffer.from(b64, 'base64'));
        }
    const json = {format: 'layers-model', generatedBy: 'nsfwjs bundle', convertedBy: null,
                  modelTopology: model.modelTopology, weightsManifest: model.weightsManifest};
    fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(json));
}

try {
    main();
} catch (e) {
    console.error('tfjs_unbundle: ' + e.message);
    process.exit(1);
}
