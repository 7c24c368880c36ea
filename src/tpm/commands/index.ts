export * from "./client.js";
export * from "./session.js";
export * from "./ek.js";
export * from "./ak.js";
export * from "./info.js";
export { TPMA_NV, TPM_NT } from "./nv.js";
export { marshalCommand, unmarshalResponse, type CommandRequest, type ParsedResponse } from "./command.js";
