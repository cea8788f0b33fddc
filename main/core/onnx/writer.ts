/**
 * ONNX ModelProto serialisation (onnx.proto field numbers). The model comes out as a list of
 * chunks: small encoded messages plus zero-copy byte views of the weight arrays, so a model can be
 * written to disk without any copy of its weights, or joined once into a single buffer for ORT.
 */
import { OPS, ONNX_DTYPE, type AttrType, type AttrValue, type OpSpec } from './ops.ts';
import { ProtoWriter } from './protobuf.ts';
import type { Graph, Initializer } from './ir.ts';
import type { ValueInfo } from './shape.ts';

/** ORT 1.30 implements the default domain up to opset 21+; 20 is the first with Gelu. */
export const OPSET = 20;
export const IR_VERSION = 9;

const ATTR_TYPE_CODE: Record<AttrType, number> = { float: 1, int: 2, string: 3, floats: 6, ints: 7 };

function writeAttribute(w: ProtoWriter, name: string, type: AttrType, value: AttrValue): void {
  w.message(5, (a) => {
    a.string(1, name);
    a.int(20, ATTR_TYPE_CODE[type]);
    switch (type) {
      case 'float': a.float(2, value as number); break;
      case 'int': a.int(3, value as number); break;
      case 'string': a.string(4, value as string); break;
      case 'floats': for (const v of value as number[]) a.float(7, v); break;
      case 'ints': for (const v of value as number[]) a.int(8, v); break;
    }
  });
}

function writeValueInfo(w: ProtoWriter, field: number, info: ValueInfo): void {
  w.message(field, (v) => {
    v.string(1, info.name);
    v.message(2, (type) => type.message(1, (tensor) => {
      tensor.int(1, ONNX_DTYPE[info.dtype]);
      tensor.message(2, (shape) => {
        for (const d of info.shape) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    }));
  });
}

function dataBytes(init: Initializer): Uint8Array {
  const d = init.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** TensorProto without its raw_data payload, plus the payload (a view, not a copy). */
function tensorParts(init: Initializer): { head: Uint8Array; payload: Uint8Array } {
  const payload = dataBytes(init);
  const w = new ProtoWriter();
  for (const d of init.shape) w.int(1, d);
  w.int(2, ONNX_DTYPE[init.dtype]);
  w.string(8, init.name);
  w.lengthHeader(9, payload.byteLength);
  return { head: w.finish().slice(), payload };
}

/** TensorProto whose data lives in an external file (ONNX external data: location, offset, length). */
function externalTensor(init: Initializer, location: string, offset: number, length: number): Uint8Array {
  const w = new ProtoWriter();
  for (const d of init.shape) w.int(1, d);
  w.int(2, ONNX_DTYPE[init.dtype]);
  w.string(8, init.name);
  for (const [key, value] of [['location', location], ['offset', String(offset)], ['length', String(length)]]) {
    w.message(13, (e) => {
      e.string(1, key!);
      e.string(2, value!);
    });
  }
  w.int(14, 1); // data_location = EXTERNAL
  return w.finish().slice();
}

/** Alignment of each tensor in an external data file: ONNX Runtime maps the file, so keep pages and SIMD happy. */
export const EXTERNAL_ALIGNMENT = 4096;

export interface SerializedModel {
  chunks: Uint8Array[];
  byteLength: number;
  /** with `externalData`: the data file's chunks (weights as views, zero padding between) */
  dataChunks?: Uint8Array[];
  dataByteLength?: number;
}

export interface SerializeOptions {
  name?: string;
  producer?: string;
  docString?: string;
  /**
   * Put initializers of at least `threshold` bytes (default 1024) in a separate file named
   * `location` (relative to the model file), so that ONNX Runtime memory-maps them instead of
   * parsing them out of the protobuf.
   */
  externalData?: { location: string; threshold?: number };
}

export function serializeModel(graph: Graph, opts: SerializeOptions = {}): SerializedModel {
  // graph body except initializers
  const body = new ProtoWriter();
  for (const node of graph.nodes) {
    body.message(1, (n) => {
      for (const i of node.inputs) n.string(1, i);
      for (const o of node.outputs) n.string(2, o);
      // named after its first output, so ONNX Runtime's errors and profiles say which node
      n.string(3, node.outputs[0]!);
      n.string(4, node.op);
      const domain = (OPS[node.op] as OpSpec).domain;
      if (domain) n.string(7, domain);
      const schema: Record<string, AttrType> = OPS[node.op].attrs;
      for (const [key, value] of Object.entries(node.attrs)) writeAttribute(n, key, schema[key]!, value);
    });
  }
  body.string(2, opts.name ?? 'graph');
  for (const name of graph.inputs) writeValueInfo(body, 11, graph.info(name));
  for (const name of graph.outputs) writeValueInfo(body, 12, graph.info(name));
  const bodyBytes = body.finish();

  const initChunks: Uint8Array[] = [];
  let initBytes = 0;
  const dataChunks: Uint8Array[] = [];
  let dataBytesTotal = 0;
  const external = opts.externalData;
  const threshold = external?.threshold ?? 1024;
  const zeros = new Uint8Array(EXTERNAL_ALIGNMENT);
  for (const init of graph.initializers.values()) {
    const payload = dataBytes(init);
    let parts: Uint8Array[];
    if (external && payload.byteLength >= threshold) {
      const pad = (EXTERNAL_ALIGNMENT - (dataBytesTotal % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
      if (pad) dataChunks.push(zeros.subarray(0, pad));
      dataBytesTotal += pad;
      parts = [externalTensor(init, external.location, dataBytesTotal, payload.byteLength)];
      dataChunks.push(payload);
      dataBytesTotal += payload.byteLength;
    } else {
      const { head } = tensorParts(init);
      parts = [head, payload];
    }
    const messageLength = parts.reduce((n, c) => n + c.byteLength, 0);
    const prefix = new ProtoWriter();
    prefix.lengthHeader(5, messageLength);
    const p = prefix.finish().slice();
    initChunks.push(p, ...parts);
    initBytes += p.byteLength + messageLength;
  }
  const graphLength = bodyBytes.byteLength + initBytes;

  const model = new ProtoWriter();
  model.int(1, IR_VERSION);
  model.string(2, opts.producer ?? 'sam2unet-workstation');
  if (opts.docString) model.string(6, opts.docString);
  model.message(8, (o) => {
    o.string(1, '');
    o.int(2, OPSET);
  });
  const domains = new Set(graph.nodes.map((n) => (OPS[n.op] as OpSpec).domain).filter((d): d is string => Boolean(d)));
  for (const domain of domains) {
    model.message(8, (o) => {
      o.string(1, domain);
      o.int(2, 1);
    });
  }
  model.lengthHeader(7, graphLength);
  const head = model.finish().slice();
  const chunks = [head, bodyBytes.slice(), ...initChunks];
  const byteLength = head.byteLength + graphLength;
  return external ? { chunks, byteLength, dataChunks, dataByteLength: dataBytesTotal } : { chunks, byteLength };
}

/** One contiguous buffer (the only copy of the weights this module ever makes). */
export function joinChunks(model: SerializedModel): Uint8Array {
  const out = new Uint8Array(model.byteLength);
  let pos = 0;
  for (const c of model.chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  if (pos !== model.byteLength) throw new Error(`ONNX writer: wrote ${pos} bytes, expected ${model.byteLength}`);
  return out;
}
