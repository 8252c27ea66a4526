"""Serving: start vLLM (docker, local, apptainer or the embedded CPU build), wait for health, record the
state file that `medsweep eval` reads, stop it again, and collect provenance.

The modules others call (this package imports none of them, so that the engines, which use its small
helpers, never import it back):
    lifecycle.start_server(plan, log_path=..., api_key=...) -> RunningServer  (the one start path)
    lifecycle.wait_ready / is_alive / stop / logs / follow_argv (RunningServer)
    running.RunningServer (the one record of a started server)
    state.read_state() / write_state(server) / clear_state()  (.medsweep/serve.json)
    launch.serve(request) / launch.stop()  (`medsweep serve` / `medsweep stop`)
    provenance.collect_provenance(endpoint, state=None) -> ServerProvenance  (RunProvenance: the run's record)
"""
