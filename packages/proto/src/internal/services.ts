import * as grpc from '@grpc/grpc-js';
import {
  healthDefinitionUntyped,
  MEMORY_SERVICE_NAME,
  memoryServiceDefinitionUntyped,
  REPLICA_SERVICE_NAME,
  replicaServiceDefinitionUntyped,
} from './load.js';
import type {
  ApplyEntriesRequest,
  ApplyEntriesResponse,
  ConsolidateRequest,
  ConsolidateResponse,
  HealthCheckRequest,
  HealthCheckResponse,
  Init,
  ListSpacesRequest,
  ListSpacesResponse,
  QueryRequest,
  QueryResponse,
  RecallRequest,
  RecallResponse,
  RoutingInfo,
  ScanSpaceRequest,
  ScanSpaceResponse,
  StoreRequest,
  StoreResponse,
} from './messages.js';

/** A method definition as the client sees it (sends `Init<Req>`, receives `Res`) and the server (the reverse). */
// biome-ignore lint/suspicious/noExplicitAny: grpc-js's ServiceDefinition index type is MethodDefinition<any, any>
export interface TypedMethodDefinition<Req, Res> extends grpc.MethodDefinition<any, any> {
  requestSerialize(value: Init<Req>): Buffer;
  requestDeserialize(bytes: Buffer): Req;
  responseSerialize(value: Init<Res>): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

export interface MemoryServiceDefinition extends grpc.ServiceDefinition {
  readonly Store: TypedMethodDefinition<StoreRequest, StoreResponse>;
  readonly Recall: TypedMethodDefinition<RecallRequest, RecallResponse>;
  readonly Consolidate: TypedMethodDefinition<ConsolidateRequest, ConsolidateResponse>;
  readonly Query: TypedMethodDefinition<QueryRequest, QueryResponse>;
}

export interface ReplicaServiceDefinition extends grpc.ServiceDefinition {
  readonly ListSpaces: TypedMethodDefinition<ListSpacesRequest, ListSpacesResponse>;
  readonly ScanSpace: TypedMethodDefinition<ScanSpaceRequest, ScanSpaceResponse>;
  readonly ApplyEntries: TypedMethodDefinition<ApplyEntriesRequest, ApplyEntriesResponse>;
}

export interface HealthDefinition extends grpc.ServiceDefinition {
  readonly Check: TypedMethodDefinition<HealthCheckRequest, HealthCheckResponse>;
  readonly Watch: TypedMethodDefinition<HealthCheckRequest, HealthCheckResponse>;
}

/** `engram.v1.MemoryService` as loaded by proto-loader, for `server.addService` and `makeClientConstructor`. */
export const MemoryServiceDefinition = memoryServiceDefinitionUntyped as MemoryServiceDefinition;
/** `engram.v1.ReplicaService` (replication and repair; a router calls a node directly). */
export const ReplicaServiceDefinition = replicaServiceDefinitionUntyped as ReplicaServiceDefinition;
/** `grpc.health.v1.Health`. */
export const HealthDefinition = healthDefinitionUntyped as HealthDefinition;

/** Server-side implementation of MemoryService (pass to `server.addService(MemoryServiceDefinition, impl)`). */
export interface MemoryServiceHandlers extends grpc.UntypedServiceImplementation {
  Store: grpc.handleUnaryCall<StoreRequest, Init<StoreResponse>>;
  Recall: grpc.handleUnaryCall<RecallRequest, Init<RecallResponse>>;
  Consolidate: grpc.handleUnaryCall<ConsolidateRequest, Init<ConsolidateResponse>>;
  Query: grpc.handleUnaryCall<QueryRequest, Init<QueryResponse>>;
}

/** Server-side implementation of ReplicaService (`server.addService(ReplicaServiceDefinition, impl)`). */
export interface ReplicaServiceHandlers extends grpc.UntypedServiceImplementation {
  ListSpaces: grpc.handleUnaryCall<ListSpacesRequest, Init<ListSpacesResponse>>;
  ScanSpace: grpc.handleUnaryCall<ScanSpaceRequest, Init<ScanSpaceResponse>>;
  ApplyEntries: grpc.handleUnaryCall<ApplyEntriesRequest, Init<ApplyEntriesResponse>>;
}

export interface HealthHandlers extends grpc.UntypedServiceImplementation {
  Check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse>;
  Watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>;
}

/** A typed unary client method with grpc-js's overloads. */
export interface UnaryClientMethod<Req, Res> {
  (request: Init<Req>, callback: grpc.requestCallback<Res>): grpc.ClientUnaryCall;
  (
    request: Init<Req>,
    metadata: grpc.Metadata,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (
    request: Init<Req>,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
  (
    request: Init<Req>,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<Res>,
  ): grpc.ClientUnaryCall;
}

export interface ServerStreamClientMethod<Req, Res> {
  (request: Init<Req>, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<Res>;
  (
    request: Init<Req>,
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<Res>;
}

/** grpc-js client for MemoryService; methods exist under both the proto name and camelCase. */
export interface MemoryServiceClient extends grpc.Client {
  store: UnaryClientMethod<StoreRequest, StoreResponse>;
  recall: UnaryClientMethod<RecallRequest, RecallResponse>;
  consolidate: UnaryClientMethod<ConsolidateRequest, ConsolidateResponse>;
  query: UnaryClientMethod<QueryRequest, QueryResponse>;
  Store: UnaryClientMethod<StoreRequest, StoreResponse>;
  Recall: UnaryClientMethod<RecallRequest, RecallResponse>;
  Consolidate: UnaryClientMethod<ConsolidateRequest, ConsolidateResponse>;
  Query: UnaryClientMethod<QueryRequest, QueryResponse>;
}

/** grpc-js client for ReplicaService; methods exist under both the proto name and camelCase. */
export interface ReplicaServiceClient extends grpc.Client {
  listSpaces: UnaryClientMethod<ListSpacesRequest, ListSpacesResponse>;
  scanSpace: UnaryClientMethod<ScanSpaceRequest, ScanSpaceResponse>;
  applyEntries: UnaryClientMethod<ApplyEntriesRequest, ApplyEntriesResponse>;
  ListSpaces: UnaryClientMethod<ListSpacesRequest, ListSpacesResponse>;
  ScanSpace: UnaryClientMethod<ScanSpaceRequest, ScanSpaceResponse>;
  ApplyEntries: UnaryClientMethod<ApplyEntriesRequest, ApplyEntriesResponse>;
}

export interface HealthClient extends grpc.Client {
  check: UnaryClientMethod<HealthCheckRequest, HealthCheckResponse>;
  watch: ServerStreamClientMethod<HealthCheckRequest, HealthCheckResponse>;
  Check: UnaryClientMethod<HealthCheckRequest, HealthCheckResponse>;
  Watch: ServerStreamClientMethod<HealthCheckRequest, HealthCheckResponse>;
}

export type ClientConstructor<C> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => C;

/** `new MemoryServiceClient('127.0.0.1:50051', grpc.credentials.createInsecure())`. */
export const MemoryServiceClient = grpc.makeClientConstructor(
  memoryServiceDefinitionUntyped,
  MEMORY_SERVICE_NAME,
) as unknown as ClientConstructor<MemoryServiceClient>;

/** `new ReplicaServiceClient('127.0.0.1:50051', grpc.credentials.createInsecure())`. */
export const ReplicaServiceClient = grpc.makeClientConstructor(
  replicaServiceDefinitionUntyped,
  REPLICA_SERVICE_NAME,
) as unknown as ClientConstructor<ReplicaServiceClient>;

export const HealthClient = grpc.makeClientConstructor(
  healthDefinitionUntyped,
  'grpc.health.v1.Health',
) as unknown as ClientConstructor<HealthClient>;

interface MemoryMethods {
  store: [StoreRequest, StoreResponse];
  recall: [RecallRequest, RecallResponse];
  consolidate: [ConsolidateRequest, ConsolidateResponse];
  query: [QueryRequest, QueryResponse];
}
export type MemoryMethodName = keyof MemoryMethods;
export type MemoryMethodRequest<M extends MemoryMethodName> = MemoryMethods[M][0];
export type MemoryMethodResponse<M extends MemoryMethodName> = MemoryMethods[M][1];

interface ReplicaMethods {
  listSpaces: [ListSpacesRequest, ListSpacesResponse];
  scanSpace: [ScanSpaceRequest, ScanSpaceResponse];
  applyEntries: [ApplyEntriesRequest, ApplyEntriesResponse];
}
export type ReplicaMethodName = keyof ReplicaMethods;
export type ReplicaMethodRequest<M extends ReplicaMethodName> = ReplicaMethods[M][0];
export type ReplicaMethodResponse<M extends ReplicaMethodName> = ReplicaMethods[M][1];

export interface CallUnaryOptions {
  /** Absolute deadline (Date or epoch ms). Default: none. */
  deadline?: Date | number;
  metadata?: grpc.Metadata;
}

function callUnary<Req, Res>(
  client: grpc.Client,
  fn: UnaryClientMethod<Req, Res>,
  request: Init<Req>,
  options: CallUnaryOptions,
): Promise<Res> {
  const callOptions: Partial<grpc.CallOptions> = {};
  if (options.deadline !== undefined) callOptions.deadline = options.deadline;
  return new Promise((resolve, reject) => {
    fn.call(client, request, options.metadata ?? new grpc.Metadata(), callOptions, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as Res);
    });
  });
}

/** Promise wrapper around one unary MemoryService call; rejects with grpc-js's `ServiceError`. */
export function callMemory<M extends MemoryMethodName>(
  client: MemoryServiceClient,
  method: M,
  request: Init<MemoryMethodRequest<M>>,
  options: CallUnaryOptions = {},
): Promise<MemoryMethodResponse<M>> {
  const fn = client[method] as unknown as UnaryClientMethod<
    MemoryMethodRequest<M>,
    MemoryMethodResponse<M>
  >;
  return callUnary(client, fn, request, options);
}

/** Promise wrapper around one unary ReplicaService call; rejects with grpc-js's `ServiceError`. */
export function callReplica<M extends ReplicaMethodName>(
  client: ReplicaServiceClient,
  method: M,
  request: Init<ReplicaMethodRequest<M>>,
  options: CallUnaryOptions = {},
): Promise<ReplicaMethodResponse<M>> {
  const fn = client[method] as unknown as UnaryClientMethod<
    ReplicaMethodRequest<M>,
    ReplicaMethodResponse<M>
  >;
  return callUnary(client, fn, request, options);
}

/** Promise wrapper around `grpc.health.v1.Health/Check`. */
export function checkHealth(
  client: HealthClient,
  service = '',
  options: CallUnaryOptions = {},
): Promise<HealthCheckResponse> {
  return callUnary(client, client.check, { service }, options);
}

/** Field number of `RoutingInfo routing` in every MemoryService response (ReplicaService's carry none). */
export const ROUTING_FIELD_NUMBER = 15;
/** Field number of `space_id` in every single-space request. */
export const SPACE_ID_FIELD_NUMBER = 1;

/** Full method paths (`:path` header values) of MemoryService. */
export const MEMORY_METHOD_PATHS = Object.freeze({
  Store: '/engram.v1.MemoryService/Store',
  Recall: '/engram.v1.MemoryService/Recall',
  Consolidate: '/engram.v1.MemoryService/Consolidate',
  Query: '/engram.v1.MemoryService/Query',
} as const);

/** Full method paths (`:path` header values) of ReplicaService. */
export const REPLICA_METHOD_PATHS = Object.freeze({
  ListSpaces: '/engram.v1.ReplicaService/ListSpaces',
  ScanSpace: '/engram.v1.ReplicaService/ScanSpace',
  ApplyEntries: '/engram.v1.ReplicaService/ApplyEntries',
} as const);

/**
 * Serialized `routing = 15` field alone (tag + length + RoutingInfo). Appending these bytes to
 * any serialized MemoryService response sets (merges into) its `routing` field.
 */
export function encodeRoutingField(routing: Init<RoutingInfo>): Buffer {
  return MemoryServiceDefinition.Store.responseSerialize({ routing });
}
