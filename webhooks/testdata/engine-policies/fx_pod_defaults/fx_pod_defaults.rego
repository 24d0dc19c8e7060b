# METADATA
# title: Pod defaults
# description: Defaults pods to non-root, annotates them and adds a log agent.
# custom:
#   kind: mutating
#   resources:
#     - pods
package portcullis.fx_pod_defaults

settings := object.get(data.portcullis.config, ["policies", "fx_pod_defaults"], {})

mutate contains {"op": "default", "path": ["spec", "securityContext", "runAsNonRoot"], "value": true} if {
	input.request.operation == "CREATE"
}

mutate contains {"op": "merge", "path": ["metadata", "annotations"], "value": settings.annotations} if {
	input.request.operation == "CREATE"
}

mutate contains {"op": "append", "path": ["spec", "containers"], "value": [{"name": "log-agent", "image": "registry.example/log-agent:1.0"}]} if {
	input.request.operation == "CREATE"
}
