// A small library over muvi's gRPC API: load the proto, attach the bearer token, stream events.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILE = 'muvi/plugin/v1/plugin.proto';

function loadApi() {
  const def = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the .proto (media_path, record_in, ...)
    longs: String, // int64 frames and samples arrive as strings: never lose precision
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).muvi.plugin.v1;
}

// The token the server wrote at start (mode 0600).
function readToken(tokenFile) {
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  if (!token) throw new Error(`the token file ${tokenFile} is empty`);
  return token;
}

class MuviClient {
  constructor(address, tokenFile) {
    const api = loadApi();
    this.client = new api.Muvi(address, grpc.credentials.createInsecure());
    this.metadata = new grpc.Metadata();
    this.metadata.set('authorization', `Bearer ${readToken(tokenFile)}`);
  }

  capabilities(deadlineSeconds = 10) {
    return new Promise((resolve, reject) => {
      this.client.GetCapabilities({}, this.metadata, { deadline: Date.now() + deadlineSeconds * 1000 },
        (err, caps) => (err ? reject(err) : resolve(caps)));
    });
  }

  // request: {timeline: {rate: {num, den}, segments: [{media_path, source_in, source_out, record_in}]},
  //           options: {...}, output_name, request_id}. Returns the call (an EventEmitter: 'data',
  //           'error', 'end'); call.cancel() cancels the job.
  generate(request, deadlineSeconds = 3600) {
    return this.client.Generate(request, this.metadata, { deadline: Date.now() + deadlineSeconds * 1000 });
  }

  cancel(requestId) {
    return new Promise((resolve, reject) => {
      this.client.Cancel({ request_id: requestId }, this.metadata, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  close() {
    this.client.close();
  }
}

module.exports = { MuviClient, loadApi, readToken, grpc };
