#!/bin/sh
# Sourced by the guest's stages (provision.sh, clock.sh): what the security officer does at a
# fresh appliance's console. install_site_settings puts the site's CA certificates and the
# bench's settings drop-in in place, checks them, and restarts keymotherd with them.
install_site_settings() {
    install -m 0640 -g keymother "$disk"/pki/*.pem /etc/keymother/pki/
    install -m 0640 -g keymother "$disk/50-bench.toml" /etc/keymother/keymotherd.toml.d/
    keymotherd --config /etc/keymother/keymotherd.toml --check-config
    # Not waited for here: this unit is ordered after keymotherd, so wait by polling instead.
    old_pid=$(systemctl show --property=MainPID --value keymotherd.service)
    systemctl restart --no-block keymotherd.service
    waited=0
    until systemctl is-active --quiet keymotherd.service &&
        [ "$(systemctl show --property=MainPID --value keymotherd.service)" != "$old_pid" ]; do
        waited=$((waited + 1))
        [ $waited -le 120 ] || fail "keymotherd is not active 120 s after its restart"
        sleep 1
    done
    # Its socket answers once it is ready.
    waited=0
    until keymother status >/dev/null 2>&1; do
        waited=$((waited + 1))
        [ $waited -le 120 ] || fail "keymotherd does not answer 120 s after its restart"
        sleep 1
    done
    say "keymotherd restarted with the site's settings"
}
