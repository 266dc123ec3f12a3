"""Training and fitting one pack of trials on one device: data on device, the pure step,
programs, evaluation, memory, checkpoints, closed-form fits, and the measured cost tables that
choose how replicas are combined. It reads specs and kinds below it and writes through the
store; it never schedules."""
