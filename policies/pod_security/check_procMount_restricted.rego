package portcullis.pod_security

# procMount_restricted (restricted, v1.35+): the unconditional procMount check
# (no user-namespace relaxation); it replaces the baseline procMount check.

result["procMount_restricted"] := _proc_mount_result
