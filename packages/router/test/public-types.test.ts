import type { RoutingInfo as ProtoRoutingInfo, StoreResponse } from '@engram/proto';
import { describe, expectTypeOf, it } from 'vitest';
import type {
  ConsolidateResult,
  Init,
  QueryResult,
  RecallResult,
  Router,
  RoutingInfo,
  StoreRequest,
  StoreResult,
} from '../src/index.js';

// Checked by `tsc` (pnpm typecheck); at run time these are no-ops.
describe('public types', () => {
  it('the typed calls promise a filled routing, not RoutingInfo | null', () => {
    expectTypeOf<Awaited<ReturnType<Router['store']>>>().toEqualTypeOf<StoreResult>();
    expectTypeOf<Awaited<ReturnType<Router['recall']>>>().toEqualTypeOf<RecallResult>();
    expectTypeOf<Awaited<ReturnType<Router['consolidate']>>>().toEqualTypeOf<ConsolidateResult>();
    expectTypeOf<Awaited<ReturnType<Router['query']>>>().toEqualTypeOf<QueryResult>();
    expectTypeOf<StoreResult['routing']>().toEqualTypeOf<RoutingInfo>();
    expectTypeOf<QueryResult['routing']>().toEqualTypeOf<RoutingInfo>();
    // Still the wire type: a server can answer with it as is.
    expectTypeOf<StoreResult>().toExtend<StoreResponse>();
  });

  it('RoutingInfo is the one engram.v1 message type, and request types come with the router', () => {
    expectTypeOf<RoutingInfo>().toEqualTypeOf<ProtoRoutingInfo>();
    expectTypeOf<Parameters<Router['store']>[0]>().toEqualTypeOf<Init<StoreRequest>>();
  });
});
