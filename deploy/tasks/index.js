// Task handlers for the messaging-system/worker image: messaging_worker loads this module from
// /opt/messaging-tasks/index.js (deploy/docker-compose.yml mounts this folder there). Replace it with
// your own — mount a folder, or build `FROM messaging-system/worker` and COPY your handlers in. The
// default export maps task names to handlers; a handler gets the task's arguments and a context (id,
// attempt, an AbortSignal, progress reporting) and returns the result.
export default {
  // `messaging` clients submit { name: 'echo', args: … } and get the arguments back as the result.
  echo: async (args) => args,
};
