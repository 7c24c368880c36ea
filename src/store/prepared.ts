import { CompiledQuery, type Compilable, type QueryResult } from "kysely";
import { TpmTrustError } from "../errors.js";
import type { Ctx, DialectName } from "./ctx.js";
import type { Database } from "./schema.js";

/** What stands for argument `i` while the query is built: a string no caller passes. */
const marker = (i: number): string => `\u0000tpmtrust-arg-${i}\u0000`;
const MARKER = /^\u0000tpmtrust-arg-(\d+)\u0000$/;

type Slot = { arg: number } | { value: unknown };

/**
 * The SQL of every prepared query, with the name PostgreSQL knows it by: the store's connections
 * prepare each on the server once (named statement) and then only bind and execute it.
 */
export const serverStatements = new Map<string, string>();
const nameStatement = (text: string) => {
  if (!serverStatements.has(text)) serverStatements.set(text, `tpmtrust_${serverStatements.size + 1}`);
};

/** A statement written in SQL (what Kysely cannot build, e.g. data-modifying CTEs), prepared on the server like the others. */
export function preparedSql<R>(text: string): (ctx: Ctx, params: readonly unknown[]) => Promise<QueryResult<R>> {
  nameStatement(text);
  return (ctx, params) => ctx.db.executeQuery<R>(CompiledQuery.raw(text, [...params]));
}

/**
 * A query of fixed shape, built with Kysely once per dialect and then run with new argument values:
 * the statements every attestation runs skip query building and compiling (most of Kysely's share
 * of an attestation's CPU). `build` gets the first caller's Ctx (for its `db` and dialect helpers
 * such as forUpdate) and must give the same SQL for any arguments, i.e. use them only as values
 * (never to choose clauses); an argument that does not reach the parameters fails at once.
 */
export function prepared<A extends unknown[], R>(build: (ctx: Ctx, ...args: A) => Compilable<R>): (ctx: Ctx, ...args: A) => Promise<QueryResult<R>> {
  const plans = new Map<DialectName, { sql: string; slots: Slot[] }>();
  return async (ctx, ...args) => {
    let plan = plans.get(ctx.dialect);
    if (!plan) {
      const compiled = build(ctx, ...(args.map((_, i) => marker(i)) as A)).compile();
      const slots: Slot[] = compiled.parameters.map((p) => {
        const m = typeof p === "string" ? MARKER.exec(p) : null;
        return m ? { arg: Number(m[1]) } : { value: p };
      });
      const missing = args.findIndex((_, i) => !slots.some((s) => "arg" in s && s.arg === i));
      if (missing >= 0) throw new TpmTrustError("ERR_INTERNAL", `prepared query: argument ${missing} is not a parameter of ${compiled.sql}`);
      plan = { sql: compiled.sql, slots };
      plans.set(ctx.dialect, plan);
      nameStatement(plan.sql);
    }
    return ctx.db.executeQuery<R>(CompiledQuery.raw(plan.sql, plan.slots.map((s) => ("arg" in s ? args[s.arg] : s.value))));
  };
}

/**
 * A prepared INSERT of one whole row of `table`: the columns are those of the first row inserted,
 * so every row must carry the same columns (a table's full row type does).
 */
export function preparedInsert<T extends keyof Database & string>(table: T): (ctx: Ctx, row: Database[T]) => Promise<QueryResult<unknown>> {
  let columns: string[] | undefined;
  const insert = prepared(({ db }, ...values: unknown[]) => db.insertInto(table).values(Object.fromEntries(columns!.map((c, i) => [c, values[i]])) as never));
  return (ctx, row) => {
    columns ??= Object.keys(row);
    return insert(ctx, ...columns.map((c) => (row as unknown as Record<string, unknown>)[c]));
  };
}
