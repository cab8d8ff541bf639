// A browser-style gRPC-Web client (Connect-ES over fetch) against the gateway's gRPC port:
// no generated code; the service is read from the careers descriptor set at run time.
// Usage: node client.mjs DESCRIPTORS BASE_URL TOKEN; prints one JSON line of outcomes.
import { readFileSync } from "node:fs";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const [descriptors, baseUrl, token] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)));
const service = registry.getService("careers.occupations.v1.OccupationsService");
const transport = createGrpcWebTransport({
  baseUrl,
  interceptors: [(next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  }],
});
const client = createClient(service, transport);

async function outcome(call) {
  try {
    const answer = await call();
    return { code: "ok", answer };
  } catch (error) {
    const connect = ConnectError.from(error);
    return { code: Code[connect.code], message: connect.rawMessage };
  }
}

const listed = await outcome(() => client.listOccupations({ limit: 5 }));
const malformed = await outcome(() => client.getOccupation({ socCode: "abc" }));
console.log(JSON.stringify({
  list: listed.code,
  items: listed.answer ? listed.answer.items.length : null,
  malformed: malformed.code,
  message: malformed.message ?? null,
}));
