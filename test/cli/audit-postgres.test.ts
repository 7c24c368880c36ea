import { BACKENDS } from "../helpers/store.js";
import { auditCliSuite } from "./audit-cases.js";

auditCliSuite(BACKENDS[1]);
