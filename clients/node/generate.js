#!/usr/bin/env node
// Ask a running `muvi serve` for music for a timeline and print progress, then the stems.
//
//   node generate.js --server 127.0.0.1:50051 --token-file ~/.muvi/server.token \
//       --rate 30000/1001 --out my-edit [--style pop] [--seed 1] \
//       /abs/clip1.mp4:0:240 /abs/clip2.mp4:96:300
//
// Each segment is MEDIA:SOURCE_IN:SOURCE_OUT in frames at the timeline rate; segments follow
// one another from --record-in (default 0). Exit code 0 on success, 2 on an error status.
'use strict';

const os = require('os');
const path = require('path');
const { MuviClient, grpc } = require('./muvi-client');

function parseArgs(argv) {
  const args = { server: '127.0.0.1:50051', tokenFile: path.join(os.homedir(), '.muvi', 'server.token'),
    rate: '30/1', recordIn: 0, options: {}, segments: [], out: '', requestId: '', timeout: 3600 };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      i += 1;
      return argv[i];
    };
    if (a === '--server') args.server = next();
    else if (a === '--token-file') args.tokenFile = next();
    else if (a === '--rate') args.rate = next();
    else if (a === '--record-in') args.recordIn = Number(next());
    else if (a === '--out') args.out = next();
    else if (a === '--request-id') args.requestId = next();
    else if (a === '--timeout') args.timeout = Number(next());
    else if (a === '--style' || a === '--key' || a === '--mood') args.options[a.slice(2)] = next();
    else if (a === '--seed' || a === '--steps' || a === '--bpm' || a === '--cfg') args.options[a.slice(2)] = Number(next());
    else if (a === '--no-preview') args.options.preview = false;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.segments.push(a);
  }
  if (!args.segments.length) throw new Error('give at least one segment MEDIA:SOURCE_IN:SOURCE_OUT');
  if (!args.out) throw new Error('--out NAME is required');
  return args;
}

function buildTimeline(args) {
  const [num, den] = args.rate.split('/').map(Number);
  if (!Number.isInteger(num) || !Number.isInteger(den || 1)) throw new Error(`--rate ${args.rate}: use NUM/DEN`);
  let record = args.recordIn;
  const segments = args.segments.map((spec) => {
    const m = /^(.*):(\d+):(\d+)$/.exec(spec);
    if (!m) throw new Error(`segment ${spec}: write MEDIA:SOURCE_IN:SOURCE_OUT (frames)`);
    const [, media, sin, sout] = m;
    const seg = { media_path: path.resolve(media), source_in: sin, source_out: sout, record_in: String(record) };
    record += Number(sout) - Number(sin);
    return seg;
  });
  return { rate: { num, den: den || 1 }, segments };
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`muvi node client: error: ${err.message}`);
    process.exit(2);
  }
  const client = new MuviClient(args.server, args.tokenFile);
  const call = client.generate({
    request_id: args.requestId, timeline: buildTimeline(args), options: args.options, output_name: args.out,
  }, args.timeout);
  let done = false;
  call.on('data', (event) => {
    if (event.progress) {
      const p = event.progress;
      console.log(`[${event.request_id.slice(0, 8)}] ${p.stage.padEnd(9)} ${(100 * p.fraction).toFixed(1).padStart(5)}%`);
    } else if (event.stem_ready) {
      const s = event.stem_ready;
      // int64 fields arrive as strings (longs: String): exact sample positions
      console.log(`stem ${s.stem.padEnd(7)} ${s.path}  (${s.sample_rate} Hz, ${s.bit_depth}-bit, TimeReference ${s.time_reference_samples})`);
    } else if (event.done) {
      done = true;
      const d = event.done;
      console.log(`done: ${d.output_dir} (${d.beats.length} beats, cuts on beats ${(100 * d.accent_hit_rate).toFixed(0)}%)`);
    }
  });
  call.on('error', (err) => {
    console.error(`muvi node client: error: ${grpc.status[err.code]}: ${err.details}`);
    client.close();
    process.exit(2);
  });
  call.on('end', () => {
    client.close();
    process.exit(done ? 0 : 1);
  });
}

main();
