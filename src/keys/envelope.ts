/**
 * Ciphertext envelopes of key providers (pure). An envelope names the provider and the key
 * version that sealed it; the AAD given to the key server binds both, plus the caller's optional
 * encryption context, so an envelope moved to another provider, relabelled with another version,
 * or opened with another context does not decrypt.
 *
 *   magic "TTKE" ‖ format u8 (1) ‖ nameLen u8 ‖ provider name (ASCII) ‖ version u32 ‖ sealed
 *
 * `sealed` is the key server's own blob (IV ‖ ciphertext ‖ GCM tag for both built-in kinds).
 */
import { TpmTrustError } from "../errors.js";
import { Reader, Writer } from "../tpm/marshal.js";

export const ENVELOPE_MAGIC = Buffer.from("TTKE", "latin1");
const FORMAT = 1;
const AAD_LABEL = Buffer.from("tpmtrust/envelope/v1\0", "latin1");

/** Provider names: lowercase letters, digits, '.', '_' and '-', 1 to 63 characters; path words of the API are reserved. */
export const PROVIDER_NAME_PATTERN = "^(?!(providers|clusters|servers)$)[a-z0-9][a-z0-9._-]{0,62}$";
const NAME = new RegExp(PROVIDER_NAME_PATTERN);
/** Largest encryption context (bytes of UTF-8). */
export const MAX_CONTEXT = 1024;

export interface Envelope {
  provider: string;
  version: number;
  sealed: Buffer;
}

function header(provider: string, version: number): Buffer {
  if (!NAME.test(provider)) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `${JSON.stringify(provider)} is not a provider name`);
  if (!Number.isInteger(version) || version < 1 || version > 0xffffffff) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", `key version ${version} is out of range`);
  const name = Buffer.from(provider, "latin1");
  return new Writer().bytes(ENVELOPE_MAGIC).u8(FORMAT).u8(name.length).bytes(name).u32(version).finish();
}

export function encodeEnvelope(e: Envelope): Buffer {
  if (e.sealed.length === 0) throw new TpmTrustError("ERR_PARSE_BAD_VALUE", "an envelope needs a sealed blob");
  return Buffer.concat([header(e.provider, e.version), e.sealed]);
}

export function decodeEnvelope(buf: Uint8Array): Envelope {
  const r = new Reader(buf);
  const magic = r.bytes(4, "envelope.magic");
  if (!magic.equals(ENVELOPE_MAGIC)) throw new TpmTrustError("ERR_PARSE_FORMAT", "not a tpmtrust ciphertext envelope (magic is not TTKE)", { offset: 0 });
  const format = r.u8("envelope.format");
  if (format !== FORMAT) throw new TpmTrustError("ERR_PARSE_UNSUPPORTED", `envelope format ${format} is not supported`, { offset: 4, format });
  const at = r.offset;
  const name = r.bytes(r.u8("envelope.nameLen"), "envelope.provider").toString("latin1");
  if (!NAME.test(name)) r.fail("envelope.provider", "not a provider name", at);
  const vAt = r.offset;
  const version = r.u32("envelope.version");
  if (version === 0) r.fail("envelope.version", "key versions start at 1", vAt);
  if (r.remaining === 0) throw new TpmTrustError("ERR_PARSE_TRUNCATED", `the envelope has no sealed data after offset ${r.offset}`, { offset: r.offset, field: "envelope.sealed" });
  return { provider: name, version, sealed: Buffer.from(r.bytes(r.remaining, "envelope.sealed")) };
}

/** The AAD a provider's key server seals with: label ‖ header ‖ u32 context length ‖ context. */
export function envelopeAad(provider: string, version: number, context: Buffer = Buffer.alloc(0)): Buffer {
  if (context.length > MAX_CONTEXT) throw new TpmTrustError("ERR_PARSE_TOO_LARGE", `the encryption context has ${context.length} bytes, at most ${MAX_CONTEXT}`, { size: context.length, max: MAX_CONTEXT });
  return new Writer().bytes(AAD_LABEL).bytes(header(provider, version)).u32(context.length).bytes(context).finish();
}
