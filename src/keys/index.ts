/**
 * Key release: trusted key providers backed by key servers, trusted clusters of hosts, and key
 * operations for hosts that hold a valid attestation token.
 *
 *   admin:  addKeyServer → createProvider → putCluster; rotateProvider / retireVersion / setProviderEnabled
 *   host:   authorizeHost(token) → encrypt | decrypt | dataKey | release (to the host's TPM)
 */
export type { KeyServer, KeyServerKind, KeyRef } from "./server.js";
export { KEY_SERVER_KINDS, keyServerKind, keyServerFor, closeKeyServers } from "./kinds.js";
export { MASTER_KEY_ENV, DEFAULT_MASTER_KEY_FILE, readMasterKey } from "./local.js";
export { KEY_DIR_ENV, keyDirOf, storeKeyDir, type KeyDirContext } from "./key-dir.js";
export { encodeEnvelope, decodeEnvelope, envelopeAad, ENVELOPE_MAGIC, PROVIDER_NAME_PATTERN, MAX_CONTEXT, type Envelope } from "./envelope.js";
export {
  addKeyServer,
  listKeyServers,
  createProvider,
  getProvider,
  listProviders,
  setProviderEnabled,
  rotateProvider,
  retireVersion,
  DEFAULT_KEY_SERVER,
  KEY_SERVER_NAME_PATTERN,
  KEY_ID_PATTERN,
  type ProviderView,
  type Caller,
} from "./providers.js";
export { putCluster, getCluster, listClusters, removeCluster, clusterSelects, clustersAllowing, CLUSTER_NAME_PATTERN, type ClusterInput } from "./clusters.js";
export { authorizeHost, type HostGrant, type KeyOperation } from "./authorize.js";
export { encrypt, decrypt, dataKey, MAX_PLAINTEXT, DATA_KEY_SIZES } from "./operations.js";
export { release, verifySrk, type SrkProof, type Release } from "./release.js";
