/**
 * Helper process of `SocketDuplicator`: echoes every handle it is sent back to its parent.
 * Passing a handle over the IPC channel (SCM_RIGHTS) gives the receiver a new fd for the same
 * socket, i.e. a `dup()`, which Node has no API for. Holds nothing open itself.
 */
process.on('message', (msg: unknown, handle: unknown) => {
  if (handle === undefined || process.send === undefined) return;
  // keepOpen false: our copy is closed once sent.
  process.send(msg, handle as never, { keepOpen: false });
});
process.on('disconnect', () => process.exit(0));
