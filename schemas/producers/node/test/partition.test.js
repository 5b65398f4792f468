'use strict';
// kafkajs's DefaultPartitioner, which the exporter uses, against the golden manifests.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Partitioners } = require('kafkajs');

const { traceKey } = require('../src');
const { TESTDATA } = require('./helpers');

test('the default partitioner puts golden keys on the manifest partitions', () => {
  const manifests = fs.readdirSync(TESTDATA).filter((f) => f.endsWith('.otlp_proto.json'));
  assert.ok(manifests.length >= 2, `golden manifests missing in ${TESTDATA}`);
  const partitioner = Partitioners.DefaultPartitioner();
  for (const file of manifests) {
    const manifest = JSON.parse(fs.readFileSync(path.join(TESTDATA, file), 'utf8'));
    assert.equal(traceKey(manifest.key), manifest.key);
    for (const [count, expected] of Object.entries(manifest.partition_for_partition_count)) {
      const partitionMetadata = Array.from({ length: Number(count) }, (_, i) => ({ partitionId: i, leader: 0 }));
      const got = partitioner({ topic: 't', partitionMetadata, message: { key: manifest.key } });
      assert.equal(got, expected, `${file} with ${count} partitions`);
    }
  }
});
