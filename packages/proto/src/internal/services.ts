import * as grpc from '@grpc/grpc-js';
import { healthDefinitionUntyped, memoryServiceDefinitionUntyped } from './load.js';
import type {
  ConsolidateRequest,
  ConsolidateResponse,
  HealthCheckRequest,
  HealthCheckResponse,
  Init,
  QueryRequest,
  QueryResponse,
  RecallRequest,
  RecallResponse,
  RoutingInfo,
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

export interface HealthDefinition extends grpc.ServiceDefinition {
  readonly Check: TypedMethodDefinition<HealthCheckRequest, HealthCheckResponse>;
  readonly Watch: TypedMethodDefinition<HealthCheckRequest, HealthCheckResponse>;
}

/** `engram.v1.MemoryService` as loaded by proto-loader, for `server.addService` and `makeClientConstructor`. */
export const MemoryServiceDefinition = memoryServiceDefinitionUntyped as MemoryServiceDefinition;
/** `grpc.health.v1.Health`. */
export const HealthDefinition = healthDefinitionUntyped as HealthDefinition;

/** Server-side implementation of MemoryService (pass to `server.addService(MemoryServiceDefinition, impl)`). */
export interface MemoryServiceHandlers extends grpc.UntypedServiceImplementation {
  Store: grpc.handleUnaryCall<StoreRequest, Init<StoreResponse>>;
  Recall: grpc.handleUnaryCall<RecallRequest, Init<RecallResponse>>;
  Consolidate: grpc.handleUnaryCall<ConsolidateRequest, Init<ConsolidateResponse>>;
  Query: grpc.handleUnaryCall<QueryRequest, Init<QueryResponse>>;
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
  'engram.v1.MemoryService',
) as unknown as ClientConstructor<MemoryServiceClient>;

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

export interface CallUnaryOptions {
  /** Absolute deadline (Date or epoch ms). Default: none. */
  deadline?: Date | number;
  metadata?: grpc.Metadata;
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
  const callOptions: Partial<grpc.CallOptions> = {};
  if (options.deadline !== undefined) callOptions.deadline = options.deadline;
  return new Promise((resolve, reject) => {
    fn.call(client, request, options.metadata ?? new grpc.Metadata(), callOptions, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as MemoryMethodResponse<M>);
    });
  });
}

/** Promise wrapper around `grpc.health.v1.Health/Check`. */
export function checkHealth(
  client: HealthClient,
  service = '',
  options: CallUnaryOptions = {},
): Promise<HealthCheckResponse> {
  const callOptions: Partial<grpc.CallOptions> = {};
  if (options.deadline !== undefined) callOptions.deadline = options.deadline;
  return new Promise((resolve, reject) => {
    client.check({ service }, options.metadata ?? new grpc.Metadata(), callOptions, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as HealthCheckResponse);
    });
  });
}

/** Field number of `RoutingInfo routing` in every MemoryService response. */
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

/**
 * Serialized `routing = 15` field alone (tag + length + RoutingInfo). Appending these bytes to
 * any serialized MemoryService response sets (merges into) its `routing` field.
 */
export function encodeRoutingField(routing: Init<RoutingInfo>): Buffer {
  return MemoryServiceDefinition.Store.responseSerialize({ routing });
}
