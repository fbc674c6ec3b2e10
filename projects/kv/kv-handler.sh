#!/bin/sh
# One client connection of the kv service. Commands, one per line:
#   SET key value | GET key | DEL key | KEYS | QUIT
# Keys are limited to [A-Za-z0-9_.-]; values are stored as files under /data.
while read -r command key value; do
    case "$key" in
    *[!A-Za-z0-9_.-]*) echo "ERR bad key"; continue ;;
    esac
    case "$command" in
    SET) printf '%s\n' "$value" >"/data/$key" && echo OK ;;
    GET) if [ -f "/data/$key" ]; then cat "/data/$key"; else echo "ERR no such key"; fi ;;
    DEL) rm -f "/data/$key" && echo OK ;;
    KEYS) ls /data ;;
    QUIT) exit 0 ;;
    *) echo "ERR unknown command" ;;
    esac
done
