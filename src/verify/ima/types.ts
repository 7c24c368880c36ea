/** A file (or buffer) digest as an IMA template field carries it. */
export interface ImaDigest {
  /** Linux hash algorithm name ("sha256", "sha1", "md5", …). */
  alg: string;
  digest: Buffer;
}

/** One entry of an IMA measurement list (binary or ASCII form). */
export interface ImaEntry {
  /** Position in the list of the current boot (0 = boot_aggregate). */
  index: number;
  /** Byte offset of the entry in the input (binary) or of its line (ASCII). */
  offset: number;
  pcr: number;
  /** Template hash as the list gives it (SHA-1 in the default list, the bank's hash in per-bank lists). */
  templateHash: Buffer;
  /** Template name as the kernel wrote it: a known name or a custom field list ("d-ng|n-ng|sig"). */
  template: string;
  /** Field ids of the template, in order. */
  fields: readonly string[];
  /** The bytes the kernel hashed into the template hash (for `ima`: digest ‖ name padded to 256 bytes). */
  hashed: Buffer;
  /** A measurement violation (ToMToU, open writers): template hash all zero, PCR extended with all ones. */
  violation: boolean;
  digest: ImaDigest;
  /** File path (n, n-ng) or, for ima-buf, the buffer's name (keyring, critical-data label). */
  path: string;
  sig?: Buffer;
  buf?: Buffer;
  modsigDigest?: ImaDigest;
  modsig?: Buffer;
}

export interface ImaList {
  format: "binary" | "ascii";
  /** Hash of the template hashes in this list (sha1 for binary_runtime_measurements and the ASCII list). */
  templateHashAlg: string;
  entries: ImaEntry[];
}
