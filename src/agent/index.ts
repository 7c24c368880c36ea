/**
 * The attester: `tpmtrust agent` talks to the host's TPM with tpmtrust's own client and to the
 * service over its HTTP API.
 *
 *   identify(tpm)                   -> the host identity an administrator adds (`hosts add`)
 *   activate(tpm, service, opts)    -> AK under the EK, credential activation, state file
 *   attest(tpm, service, opts)      -> challenge, quotes, PCRs, event log -> verdict and token
 *   run(opts)                       -> attest every interval until aborted, with backoff
 */
export { identify, type Identification } from "./identify.js";
export { activate, DEFAULT_AK_HANDLE, type ActivateOptions } from "./activate.js";
export { attest, quotePcrs, evidenceBody, DEFAULT_EVENTLOG, type AttestOptions, type AttestationResult, type Evidence } from "./attest.js";
export { DEFAULT_IMA_LIST, imaIncrement, type ImaOptions } from "./ima.js";
export { run, backoffDelay, type RunOptions, type RunSummary } from "./run.js";
export { ServiceClient, type ServiceOptions } from "./http.js";
export { DEFAULT_STATE_DIR, readState, readToken, tokenPath, type AgentState } from "./state.js";
export { openTpm, withTpm, loadEk, withEk, EK_ALG_KINDS, type LoadedEk } from "./tpm.js";
