/** The admin port: health, readiness, metrics, and the hook later admin routes plug into. */
export {
  startAdminServer,
  sendError,
  sendJson,
  type AdminHandler,
  type AdminServer,
  type AdminServerOptions,
} from './server.ts';
export {
  worstStatus,
  type ComponentHealth,
  type ComponentStatus,
  type HealthBody,
  type HealthSource,
} from './health.ts';
