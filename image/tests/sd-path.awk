# image/tests/sd-path.awk: reads a device tree decompiled by dtc (`dtc -I dtb -O dts`) and
# prints every node a board needs to reach its SD card or eMMC, one per line:
#
#   PATH <TAB> WHY <TAB> MODALIAS <TAB> COMPATIBLES
#
# COMPATIBLES is the node's compatible list, most specific first, separated by spaces.
# MODALIAS is what the kernel gives the device and modprobe matches against modules.alias
# (of:N<name>T<device_type or <NULL>>C<compatible>C<compatible>...). The walk starts at every
# enabled MMC host (a node named mmc@...) that does not carry an SDIO function (the Pi's
# Wi-Fi sits on its own controller, as a child node with a compatible), and follows:
# - the phandles that a device needs before it probes: supplies (vmmc-supply, vqmmc-supply,
#   vin-supply...), GPIOs (gpios, gpio, *-gpios), clocks, DMA channels, resets, power
#   domains, mailboxes, pin control, interrupt parents, mmc-pwrseq; a specifier's arguments
#   are skipped using the provider's #...-cells;
#   (a clock controller's own input clocks are not followed: see below);
# - each node's ancestors: a child of a firmware or bus node exists only once its parent's
#   driver has probed (the Pi 4's GPIO expander is a child of the firmware node).
# Disabled hosts are reported with WHY "disabled" and not followed.

# dtc prints cells in hexadecimal (0x1f); mawk has no strtonum.
function number(text,   i, digit, value) {
    text = tolower(text)
    if (text !~ /^0x/) return text + 0
    value = 0
    for (i = 3; i <= length(text); i++) {
        digit = index("0123456789abcdef", substr(text, i, 1)) - 1
        if (digit < 0) return -1
        value = value * 16 + digit
    }
    return value
}

function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

function parent_of(path,   p) {
    if (path == "/") return ""
    p = path
    sub(/\/[^\/]*$/, "", p)
    return p == "" ? "/" : p
}

function basename_of(path,   b) { b = path; sub(/.*\//, "", b); return b }

# All the numbers in a cell list such as <0x1f 0x04 0x00>, into array cells; returns how many.
function cells_of(value, cells,   n, i, parts, count, v) {
    gsub(/[<>,]/, " ", value)
    n = split(value, parts, /[ \t]+/)
    count = 0
    for (i = 1; i <= n; i++) {
        v = parts[i]
        if (v == "") continue
        cells[++count] = v
    }
    return count
}

function cells_property(prop) {
    if (prop ~ /-supply$/ || prop == "interrupt-parent" || prop == "mmc-pwrseq" || prop ~ /^pinctrl-[0-9]+$/)
        return ""          # plain phandles (lists of them for pinctrl-N), no arguments
    if (prop == "gpios" || prop == "gpio" || prop ~ /-gpios?$/) return "#gpio-cells"
    if (prop == "clocks") return "#clock-cells"
    if (prop == "dmas") return "#dma-cells"
    if (prop == "resets") return "#reset-cells"
    if (prop == "power-domains") return "#power-domain-cells"
    if (prop == "mboxes") return "#mbox-cells"
    if (prop == "phys") return "#phy-cells"
    return "-"
}

function visit(path, why) {
    if (path == "" || (path in seen)) return
    seen[path] = 1
    queue[++queued] = path
    reason[path] = why
}

# The node's compatible strings, separated by spaces (dtc prints "a\0b" or "a", "b").
function compatibles(path,   compat) {
    if (!((path SUBSEP "compatible") in prop)) return ""
    compat = prop[path, "compatible"]
    gsub(/^"|"$/, "", compat)
    gsub(/", "|\\0/, " ", compat)
    return compat
}

# modalias and compatibles, tab-separated
function describe(path,   type, n, i, parts, result) {
    type = (path SUBSEP "device_type") in prop ? prop[path, "device_type"] : "<NULL>"
    gsub(/"/, "", type)
    result = "of:N" nodename[path] "T" type
    n = split(compatibles(path), parts, " ")
    for (i = 1; i <= n; i++) result = result "C" parts[i]
    return result "\t" compatibles(path)
}

BEGIN { depth = 0; path = "" }

/^\/dts-v1\/;/ || /^\/memreserve\// || /^[ \t]*$/ { next }

/\{[ \t]*$/ {
    name = trim($0)
    sub(/[ \t]*\{$/, "", name)
    sub(/^[^:]*: /, "", name)          # a label, if dtc printed one
    if (name == "/") path = "/"
    else path = (path == "/" ? "" : path) "/" name
    stack[++depth] = path
    nodes[++node_count] = path
    nodename[path] = name
    sub(/@.*/, "", nodename[path])
    next
}

/^[ \t]*\};[ \t]*$/ {
    depth--
    path = depth > 0 ? stack[depth] : ""
    next
}

{
    line = trim($0)
    sub(/;$/, "", line)
    eq = index(line, " = ")
    if (eq > 0) {
        key = substr(line, 1, eq - 1)
        value = substr(line, eq + 3)
    } else {
        key = line
        value = ""
    }
    prop[path, key] = value
    props[path] = props[path] " " key
    if (key == "phandle") {
        cells_of(value, c)
        by_phandle[number(c[1])] = path
    }
}

END {
    for (i = 1; i <= node_count; i++) {
        p = nodes[i]
        if (nodename[p] != "mmc") continue
        status = (p SUBSEP "status") in prop ? prop[p, "status"] : "\"okay\""
        # an SDIO function (Wi-Fi) as a child: not where the root file system lives
        sdio = ""
        for (j = 1; j <= node_count; j++)
            if (parent_of(nodes[j]) == p && ((nodes[j] SUBSEP "compatible") in prop))
                sdio = nodes[j]
        if (status != "\"okay\"" && status != "\"ok\"") {
            printf "%s\tdisabled\t%s\n", p, describe(p)
            continue
        }
        if (sdio != "") {
            printf "%s\tsdio (%s), not followed\t%s\n", p, basename_of(sdio), describe(p)
            continue
        }
        visit(p, "SD card or eMMC host")
    }
    for (head = 1; head <= queued; head++) {
        p = queue[head]
        printf "%s\t%s\t%s\n", p, reason[p], describe(p)
        # its ancestors
        a = parent_of(p)
        if (a != "/" && a != "") visit(a, "parent of " p)
        # its interrupt parent, inherited when not its own
        if (((p SUBSEP "interrupts") in prop) && !((p SUBSEP "interrupt-parent") in prop)) {
            for (a = p; a != "" && !((a SUBSEP "interrupt-parent") in prop); a = parent_of(a))
                ;
            if (a != "") {
                cells_of(prop[a, "interrupt-parent"], c)
                visit(by_phandle[number(c[1])], "interrupt-parent (inherited) of " p)
            }
        }
        n = split(props[p], keys, " ")
        for (k = 1; k <= n; k++) {
            key = keys[k]
            kind = cells_property(key)
            if (kind == "-") continue
            # A clock controller's own input clocks are looked up by name when a clock is
            # used, not at probe: the Pi's cprman lists the DSI PHYs (the display's vc4
            # driver) as inputs, a cycle fw_devlink breaks; it does not wait for them.
            if (key == "clocks" && ((p SUBSEP "#clock-cells") in prop)) continue
            delete c
            count = cells_of(prop[p, key], c)
            for (x = 1; x <= count; ) {
                target = by_phandle[number(c[x])]
                if (target == "") {
                    printf "%s\t%s: no node has phandle %s\t\t\n", p, key, c[x]
                    x++
                    continue
                }
                visit(target, key " of " p)
                args = 0
                if (kind != "") {
                    args = (target SUBSEP kind) in prop ? prop[target, kind] : ""
                    if (args == "") args = (kind == "#gpio-cells") ? 2 : 0
                    else { delete a2; cells_of(args, a2); args = number(a2[1]) }
                }
                x += 1 + args
            }
        }
    }
}
