#!/usr/bin/env bash
# Entrypoint of the job image: resolves ${FLINK_SECRET_*} placeholders in Flink's config.yaml from
# the environment, then runs the official Flink entrypoint with the same arguments.
#
# Why: on Kubernetes the operator mounts config.yaml read-only from a ConfigMap, and a ConfigMap
# (like the FlinkDeployment it comes from) must hold no secret. Options such as the InfluxDB
# reporter's password therefore say `${FLINK_SECRET_INFLUX_TOKEN}`; the pod gets that variable
# from a Secret (secretKeyRef), and this script writes a resolved copy of the config directory
# (mode 700) and points FLINK_CONF_DIR at it. Only FLINK_SECRET_* names are substituted, so any
# other `$` in the config stays as it is; a placeholder without its variable stops the container.
set -euo pipefail

conf_dir="${FLINK_CONF_DIR:-${FLINK_HOME:-/opt/flink}/conf}"
conf="$conf_dir/config.yaml"

if [[ -f "$conf" ]] && grep -q '\${FLINK_SECRET_[A-Z0-9_]*}' "$conf"; then
  missing=$(grep -o '\${FLINK_SECRET_[A-Z0-9_]*}' "$conf" | sort -u | tr -d '${}' |
            while read -r name; do [[ -n "${!name+set}" ]] || echo "$name"; done)
  if [[ -n "$missing" ]]; then
    echo "entrypoint: $conf needs environment variables that are not set: $(echo $missing)" >&2
    exit 1
  fi
  resolved="${FLINK_RESOLVED_CONF_DIR:-/tmp/flink-conf}"
  rm -rf "$resolved"
  mkdir -p -m 700 "$resolved"
  cp -L "$conf_dir"/* "$resolved"/  # -L: ConfigMap files are symlinks into ..data
  names=$(compgen -e | grep '^FLINK_SECRET_' | sed 's/.*/${&}/' | tr '\n' ' ')
  envsubst "$names" <"$conf" >"$resolved/config.yaml"
  export FLINK_CONF_DIR="$resolved"
fi

exec "${FLINK_ENTRYPOINT:-/docker-entrypoint.sh}" "$@"
