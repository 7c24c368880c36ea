export { type Transport, HEADER_SIZE, MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT_MS, ResponseAssembler, checkCommand, responseSize } from "./transport.js";
export { SwtpmTransport, type SwtpmTransportOptions } from "./swtpm.js";
export { DeviceTransport, type DeviceTransportOptions } from "./device.js";
export { RecordingTransport, ReplayTransport, RECORDING_FORMAT, encodeRecording, decodeRecording, type Exchange } from "./record.js";
export { openTransport, parseTpmSpec, TPM_SPEC_HELP, type TpmSpec, type OpenOptions } from "./open.js";
