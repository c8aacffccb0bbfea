# Sourced by cogo-dev: start and stop the local stack (grown as daemons arrive).
stack_up() { die "stack_up: not yet"; }
stack_down() { :; }
