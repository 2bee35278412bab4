/**
 * REST routes for tasks and schedules (docs/tasks.md, "REST"). They reuse the checks of the CMD
 * operations, so both front doors accept and refuse the same things.
 */
import type { HttpApi, HttpRequest } from '../server/http-api.ts';
import * as access from './access.ts';
import { filterFrom, str } from './commands.ts';
import type { TaskService } from './service.ts';
import { workflowFromArgs } from './workflows.ts';

export function registerTaskRoutes(api: HttpApi, service: TaskService): void {
  // Before /v1/tasks/{id}: the first matching route wins.
  api.route('GET', '/v1/tasks/stats', async (req) => ({
    body: access.visibleStats(req.identity, await service.statsSnapshot()),
  }));
  api.route('POST', '/v1/tasks', async (req) => {
    const [r] = await service.submit([req.body]);
    return { status: r!.created ? 201 : 200, body: { ...r!.task, created: r!.created } };
  });
  api.route('GET', '/v1/tasks', async (req) => ({
    body: { tasks: await access.listTasksFor(service, req.identity, filterFrom(req.query)) },
  }));
  const readable = (req: HttpRequest) => access.readableTask(service, req.identity, req.params.id!);
  const ownSchedule = (req: HttpRequest) => access.readableSchedule(service, req.identity, req.params.id!);
  api.route('GET', '/v1/tasks/{id}', async (req) => ({ body: await readable(req) }));
  api.route('DELETE', '/v1/tasks/{id}', async (req) => ({
    body: await service.cancel((await readable(req)).id),
  }));
  api.route('GET', '/v1/tasks/{id}/wait', async (req) => {
    const t = Number(req.query.get('timeout_ms') ?? 30_000);
    const timeout = Number.isFinite(t) ? Math.min(Math.max(0, t), 3600_000) : 30_000;
    return { body: await service.wait((await readable(req)).id, timeout) };
  });
  api.route('POST', '/v1/workflows', async (req) => {
    const input = workflowFromArgs(req.body);
    access.checkTemplates(req.identity, input.callback ? [...input.steps, input.callback] : input.steps);
    const { workflow, children } = await service.workflow(input);
    return { status: 201, body: { ...workflow, children: children.map((c) => c.id) } };
  });

  api.route('POST', '/v1/schedules', async (req) => {
    const task = req.body.task;
    if (task && typeof task === 'object')
      access.checkSubmitArgs(req.identity, task as Record<string, unknown>);
    return { status: 201, body: await service.createSchedule(req.body) };
  });
  api.route('GET', '/v1/schedules', async (req) => ({
    body: { schedules: access.visibleSchedules(req.identity, await service.storage.listSchedules()) },
  }));
  api.route('GET', '/v1/schedules/{id}', async (req) => ({ body: await ownSchedule(req) }));
  api.route('DELETE', '/v1/schedules/{id}', async (req) => {
    await service.removeSchedule((await ownSchedule(req)).id);
    return { status: 204, body: {} };
  });
  api.route('POST', '/v1/schedules/{id}/{action}', async (req) => {
    const id = (await ownSchedule(req)).id;
    const action = str(req.params, 'action');
    if (action === 'enable' || action === 'disable')
      return { body: await service.setScheduleEnabled(id, action === 'enable') };
    if (action === 'trigger') return { status: 201, body: await service.triggerSchedule(id) };
    return {
      status: 404,
      body: { code: 'NOT_FOUND', message: `no action "${action}": use enable, disable or trigger` },
    };
  });
}
