-- Wireshark dissector for the Serval Service Access Layer (SAL), as Serval for .NET puts it on the wire.
--
-- The wire contract is docs/protocol.md (SAL base header, extensions, transport inside the SAL) and
-- docs/control-protocol.md (registration messages carried in unconnected Serval datagrams). Installation and use:
-- docs/wireshark.md.
--
--   tshark -X lua_script:tools/wireshark/serval.lua -r capture.pcap -V
--
-- What it decodes:
--   * SAL packets over raw IP (IPv4 protocol 144, IPv6 next header 144) and over UDP encapsulation (UDP ports
--     54324-54325 by default, preference "udp_ports"; a heuristic finds SAL packets on other UDP ports);
--   * every field of the 12-byte base header, with the SAL checksum verified;
--   * every extension: PAD (0), CONTROL (1), SERVICE (2), ADDRESS (3), SOURCE (4), SOURCE6 (5), PATH (6);
--   * the transport header: TCP segments (protocol 6) and UDP datagrams (protocol 17) with both ports 0, decoded
--     here with their options and the transport checksum checked; or handed to Wireshark's own TCP/UDP dissectors
--     (preference "transport_handoff");
--   * the registration messages of the control protocol (version 1: Register, Unregister, their acks, Resolve,
--     ResolveAck) in unconnected datagrams to or from the router serviceID;
--   * serviceIDs as 64 hex digits, and as names when the names file (preference "names_file") maps them.
-- Every violation of the rules of docs/protocol.md §2-3 and §9 is reported as expert info; the dissector never
-- stops on a malformed or truncated packet.
--
-- The code only uses arithmetic (no bit library), so it runs on the Lua of Wireshark 3.x and 4.x.

local serval = Proto("serval", "Serval Service Access Layer")
local servalctl = Proto("serval.ctl", "Serval control protocol")

local DEFAULT_UDP_PORTS = "54324-54325"
-- ServiceId.FromName("serval.router"): the well-known router serviceID (docs/control-protocol.md §2).
local ROUTER_SERVICE = "7585573a42410b754f1e07ee2c0defa1590d3bf12334329781b27db9a3678109"

-------------------------------------------------------------------------------------------------------------------
-- Value tables
-------------------------------------------------------------------------------------------------------------------

local protocols = { [6] = "TCP", [17] = "UDP" }
local ext_types = {
    [0] = "PAD", [1] = "CONTROL", [2] = "SERVICE", [3] = "ADDRESS", [4] = "SOURCE", [5] = "SOURCE6", [6] = "PATH",
}
local checksum_status = { [0] = "Bad", [1] = "Good", [2] = "Unverified" }
local ctl_types = {
    [1] = "Register", [2] = "Unregister", [3] = "RegisterAck", [4] = "UnregisterAck", [5] = "Resolve", [6] = "ResolveAck",
}
local ctl_status = { [0] = "Ok", [1] = "Stale", [2] = "Rejected", [3] = "NotFound" }
local ctl_families = { [4] = "IPv4", [6] = "IPv6" }

-------------------------------------------------------------------------------------------------------------------
-- Fields
-------------------------------------------------------------------------------------------------------------------

local f = {}
-- Base header
f.src_flow = ProtoField.uint32("serval.src_flow", "Source flowID", base.DEC_HEX)
f.dst_flow = ProtoField.uint32("serval.dst_flow", "Destination flowID", base.DEC_HEX)
f.flow = ProtoField.uint32("serval.flow", "Source or destination flowID", base.DEC_HEX)
f.hdr_len = ProtoField.uint8("serval.hdr_len", "Header length (words)", base.DEC)
f.hdr_bytes = ProtoField.uint16("serval.hdr_bytes", "Header length (bytes)", base.DEC)
f.protocol = ProtoField.uint8("serval.protocol", "Protocol", base.DEC, protocols)
f.checksum = ProtoField.uint16("serval.checksum", "Checksum", base.HEX)
f.checksum_status = ProtoField.uint8("serval.checksum.status", "Checksum status", base.DEC, checksum_status)
f.control_only = ProtoField.bool("serval.control_only", "Control only (no transport header)")
f.ext_count = ProtoField.uint8("serval.ext_count", "Extensions", base.DEC)
-- Extension header
f.ext = ProtoField.none("serval.ext", "Extension")
f.ext_type = ProtoField.uint8("serval.ext.type", "Type", base.DEC, ext_types, 0xF0)
f.ext_type_low = ProtoField.uint8("serval.ext.type_low", "Low nibble", base.HEX, nil, 0x0F)
f.ext_len = ProtoField.uint8("serval.ext.len", "Length", base.DEC)
-- CONTROL
f.ctrl_flags = ProtoField.uint8("serval.control.flags", "Flags", base.HEX)
f.ctrl_syn = ProtoField.bool("serval.control.flags.syn", "SYN", 8, nil, 0x80)
f.ctrl_rsyn = ProtoField.bool("serval.control.flags.rsyn", "RSYN", 8, nil, 0x40)
f.ctrl_ack = ProtoField.bool("serval.control.flags.ack", "ACK", 8, nil, 0x20)
f.ctrl_nack = ProtoField.bool("serval.control.flags.nack", "NACK", 8, nil, 0x10)
f.ctrl_rst = ProtoField.bool("serval.control.flags.rst", "RST", 8, nil, 0x08)
f.ctrl_fin = ProtoField.bool("serval.control.flags.fin", "FIN", 8, nil, 0x04)
f.ctrl_flags_res = ProtoField.uint8("serval.control.flags.reserved", "Reserved bits", base.HEX, nil, 0x03)
f.ctrl_flags_str = ProtoField.string("serval.control.flags.str", "Flag names")
f.ctrl_reserved = ProtoField.uint8("serval.control.reserved", "Reserved", base.HEX)
f.ctrl_verno = ProtoField.uint32("serval.control.verno", "Verno", base.DEC)
f.ctrl_ackno = ProtoField.uint32("serval.control.ackno", "Ackno", base.DEC)
f.ctrl_nonce = ProtoField.bytes("serval.control.nonce", "Nonce", base.NONE)
-- SERVICE
f.svc_reserved = ProtoField.uint16("serval.service.reserved", "Reserved", base.HEX)
f.svc_id = ProtoField.bytes("serval.service.id", "ServiceID", base.NONE)
f.svc_dst = ProtoField.bytes("serval.service.dst", "Destination serviceID", base.NONE)
f.svc_src = ProtoField.bytes("serval.service.src", "Source serviceID", base.NONE)
f.svc_name = ProtoField.string("serval.service.name", "Service name")
-- ADDRESS
f.addr_body = ProtoField.bytes("serval.address.body", "Body", base.NONE)
-- SOURCE / SOURCE6
f.src_reserved = ProtoField.uint16("serval.source.reserved", "Reserved", base.HEX)
f.src_count = ProtoField.uint8("serval.source.count", "Addresses", base.DEC)
f.src_addr = ProtoField.ipv4("serval.source.addr", "Address")
f.src_addr6 = ProtoField.ipv6("serval.source6.addr", "Address")
-- PATH
f.path_flags = ProtoField.uint8("serval.path.flags", "Flags", base.HEX)
f.path_response = ProtoField.bool("serval.path.flags.response", "Response", 8, nil, 0x01)
f.path_reserved = ProtoField.uint8("serval.path.reserved", "Reserved", base.HEX)
f.path_challenge = ProtoField.bytes("serval.path.challenge", "Challenge", base.NONE)
-- TCP inside the SAL
f.tcp = ProtoField.none("serval.tcp", "TCP header")
f.tcp_srcport = ProtoField.uint16("serval.tcp.srcport", "Source port", base.DEC)
f.tcp_dstport = ProtoField.uint16("serval.tcp.dstport", "Destination port", base.DEC)
f.tcp_seq = ProtoField.uint32("serval.tcp.seq", "Sequence number", base.DEC)
f.tcp_ack = ProtoField.uint32("serval.tcp.ack", "Acknowledgement number", base.DEC)
f.tcp_hdr_len = ProtoField.uint8("serval.tcp.hdr_len", "Header length (bytes)", base.DEC)
f.tcp_flags = ProtoField.uint16("serval.tcp.flags", "Flags", base.HEX, nil, 0x01FF)
f.tcp_f_res = ProtoField.uint16("serval.tcp.flags.reserved", "Reserved", base.HEX, nil, 0x0E00)
f.tcp_f_ns = ProtoField.bool("serval.tcp.flags.ns", "NS", 16, nil, 0x0100)
f.tcp_f_cwr = ProtoField.bool("serval.tcp.flags.cwr", "CWR", 16, nil, 0x0080)
f.tcp_f_ece = ProtoField.bool("serval.tcp.flags.ece", "ECE", 16, nil, 0x0040)
f.tcp_f_urg = ProtoField.bool("serval.tcp.flags.urg", "URG", 16, nil, 0x0020)
f.tcp_f_ack = ProtoField.bool("serval.tcp.flags.ack", "ACK", 16, nil, 0x0010)
f.tcp_f_psh = ProtoField.bool("serval.tcp.flags.push", "PSH", 16, nil, 0x0008)
f.tcp_f_rst = ProtoField.bool("serval.tcp.flags.reset", "RST", 16, nil, 0x0004)
f.tcp_f_syn = ProtoField.bool("serval.tcp.flags.syn", "SYN", 16, nil, 0x0002)
f.tcp_f_fin = ProtoField.bool("serval.tcp.flags.fin", "FIN", 16, nil, 0x0001)
f.tcp_flags_str = ProtoField.string("serval.tcp.flags.str", "Flag names")
f.tcp_window = ProtoField.uint16("serval.tcp.window", "Window", base.DEC)
f.tcp_checksum = ProtoField.uint16("serval.tcp.checksum", "Checksum", base.HEX)
f.tcp_checksum_status = ProtoField.uint8("serval.tcp.checksum.status", "Checksum status", base.DEC, checksum_status)
f.tcp_urgent = ProtoField.uint16("serval.tcp.urgent", "Urgent pointer", base.DEC)
f.tcp_opt_kind = ProtoField.uint8("serval.tcp.option.kind", "Option kind", base.DEC)
f.tcp_opt_len = ProtoField.uint8("serval.tcp.option.len", "Option length", base.DEC)
f.tcp_mss = ProtoField.uint16("serval.tcp.option.mss", "MSS", base.DEC)
f.tcp_wscale = ProtoField.uint8("serval.tcp.option.wscale", "Window scale shift", base.DEC)
f.tcp_sack_perm = ProtoField.bool("serval.tcp.option.sack_perm", "SACK permitted")
f.tcp_ts_val = ProtoField.uint32("serval.tcp.option.ts.val", "Timestamp value", base.DEC)
f.tcp_ts_ecr = ProtoField.uint32("serval.tcp.option.ts.ecr", "Timestamp echo reply", base.DEC)
f.tcp_sack_le = ProtoField.uint32("serval.tcp.option.sack.le", "SACK left edge", base.DEC)
f.tcp_sack_re = ProtoField.uint32("serval.tcp.option.sack.re", "SACK right edge", base.DEC)
f.tcp_len = ProtoField.uint32("serval.tcp.len", "Payload length", base.DEC)
-- UDP inside the SAL
f.udp = ProtoField.none("serval.udp", "UDP header")
f.udp_srcport = ProtoField.uint16("serval.udp.srcport", "Source port", base.DEC)
f.udp_dstport = ProtoField.uint16("serval.udp.dstport", "Destination port", base.DEC)
f.udp_length = ProtoField.uint16("serval.udp.length", "Length", base.DEC)
f.udp_checksum = ProtoField.uint16("serval.udp.checksum", "Checksum", base.HEX)
f.udp_checksum_status = ProtoField.uint8("serval.udp.checksum.status", "Checksum status", base.DEC, checksum_status)
f.udp_len = ProtoField.uint32("serval.udp.len", "Payload length", base.DEC)
f.payload = ProtoField.bytes("serval.payload", "Payload", base.NONE)
serval.fields = f

local c = {}
c.version = ProtoField.uint8("serval.ctl.version", "Version", base.DEC)
c.type = ProtoField.uint8("serval.ctl.type", "Type", base.DEC, ctl_types)
c.flags = ProtoField.uint8("serval.ctl.flags", "Flags", base.HEX)
c.f_auth = ProtoField.bool("serval.ctl.flags.authenticated", "Authenticated", 8, nil, 0x01)
c.f_drain = ProtoField.bool("serval.ctl.flags.draining", "Draining", 8, nil, 0x02)
c.f_refresh = ProtoField.bool("serval.ctl.flags.refresh", "Refresh", 8, nil, 0x04)
c.f_undef = ProtoField.uint8("serval.ctl.flags.undefined", "Undefined bits", base.HEX, nil, 0xF8)
c.status = ProtoField.uint8("serval.ctl.status", "Status", base.DEC, ctl_status)
c.sender = ProtoField.bytes("serval.ctl.sender", "Sender", base.NONE)
c.sequence = ProtoField.uint32("serval.ctl.sequence", "Sequence", base.DEC)
c.epoch = ProtoField.bytes("serval.ctl.epoch", "Epoch", base.NONE)
c.timestamp = ProtoField.uint64("serval.ctl.timestamp", "Timestamp (ms, router clock)", base.DEC)
c.weight = ProtoField.uint32("serval.ctl.weight", "Weight", base.DEC)
c.lease = ProtoField.uint32("serval.ctl.lease", "Lease (ms)", base.DEC)
c.prefix_bits = ProtoField.uint16("serval.ctl.prefix_bits", "Prefix length (bits)", base.DEC)
c.transports = ProtoField.uint8("serval.ctl.transports", "Transports", base.HEX)
c.t_stream = ProtoField.bool("serval.ctl.transports.stream", "Stream", 8, nil, 0x01)
c.t_dgram = ProtoField.bool("serval.ctl.transports.datagram", "Datagram", 8, nil, 0x02)
c.reserved = ProtoField.uint8("serval.ctl.reserved", "Reserved", base.HEX)
c.service_id = ProtoField.bytes("serval.ctl.service_id", "ServiceID", base.NONE)
c.target = ProtoField.none("serval.ctl.target", "Target")
c.t_family = ProtoField.uint8("serval.ctl.target.family", "Family", base.DEC, ctl_families)
c.t_reserved = ProtoField.uint8("serval.ctl.target.reserved", "Reserved", base.HEX)
c.t_port = ProtoField.uint16("serval.ctl.target.port", "Port", base.DEC)
c.t_weight = ProtoField.uint32("serval.ctl.target.weight", "Weight", base.DEC)
c.t_addr = ProtoField.ipv4("serval.ctl.target.addr", "Address")
c.t_addr6 = ProtoField.ipv6("serval.ctl.target.addr6", "Address")
c.mac = ProtoField.bytes("serval.ctl.mac", "MAC (HMAC-SHA256)", base.NONE)
servalctl.fields = c

-------------------------------------------------------------------------------------------------------------------
-- Expert info
-------------------------------------------------------------------------------------------------------------------

local e = {
    truncated = ProtoExpert.new("serval.truncated", "Truncated SAL packet", expert.group.MALFORMED, expert.severity.ERROR),
    bad_hdr_len = ProtoExpert.new("serval.bad_hdr_len", "Bad SAL header length", expert.group.MALFORMED, expert.severity.ERROR),
    bad_checksum = ProtoExpert.new("serval.bad_checksum", "Bad SAL checksum", expert.group.CHECKSUM, expert.severity.ERROR),
    bad_protocol = ProtoExpert.new("serval.bad_protocol", "Unknown SAL protocol", expert.group.MALFORMED, expert.severity.ERROR),
    bad_ext = ProtoExpert.new("serval.bad_ext", "Malformed SAL extension", expert.group.MALFORMED, expert.severity.ERROR),
    unknown_ext = ProtoExpert.new("serval.unknown_ext", "Unknown SAL extension type", expert.group.MALFORMED, expert.severity.ERROR),
    too_many_ext = ProtoExpert.new("serval.too_many_ext", "More than 10 SAL extensions", expert.group.MALFORMED, expert.severity.ERROR),
    duplicate_ext = ProtoExpert.new("serval.duplicate_ext", "Duplicate SAL extension", expert.group.MALFORMED, expert.severity.ERROR),
    reserved = ProtoExpert.new("serval.reserved_set", "Reserved bits set", expert.group.PROTOCOL, expert.severity.NOTE),
    ignored = ProtoExpert.new("serval.ignored", "Accepted and ignored by receivers", expert.group.PROTOCOL, expert.severity.NOTE),
    tcp_bad = ProtoExpert.new("serval.tcp.malformed", "Malformed TCP header in SAL packet", expert.group.MALFORMED, expert.severity.ERROR),
    tcp_bad_checksum = ProtoExpert.new("serval.tcp.bad_checksum", "Bad TCP checksum", expert.group.CHECKSUM, expert.severity.ERROR),
    udp_bad = ProtoExpert.new("serval.udp.malformed", "Malformed UDP header in SAL packet", expert.group.MALFORMED, expert.severity.ERROR),
    udp_bad_checksum = ProtoExpert.new("serval.udp.bad_checksum", "Bad UDP checksum", expert.group.CHECKSUM, expert.severity.ERROR),
    ctl_bad = ProtoExpert.new("serval.ctl.malformed", "Malformed control message", expert.group.MALFORMED, expert.severity.ERROR),
    lua_error = ProtoExpert.new("serval.dissector_error", "Dissector error", expert.group.MALFORMED, expert.severity.ERROR),
}
serval.experts = { e.truncated, e.bad_hdr_len, e.bad_checksum, e.bad_protocol, e.bad_ext, e.unknown_ext, e.too_many_ext,
    e.duplicate_ext, e.reserved, e.ignored, e.tcp_bad, e.tcp_bad_checksum, e.udp_bad, e.udp_bad_checksum, e.lua_error }
servalctl.experts = { e.ctl_bad }

-------------------------------------------------------------------------------------------------------------------
-- Preferences
-------------------------------------------------------------------------------------------------------------------

serval.prefs.udp_ports = Pref.range("UDP encapsulation ports", DEFAULT_UDP_PORTS,
    "UDP ports whose payload is a SAL packet (default 54324-54325; 54325 is the default port of Serval hosts)", 65535)
serval.prefs.heuristic = Pref.bool("Find SAL packets on other UDP ports", true,
    "Try UDP datagrams on other ports as SAL packets: accepted when the header length, protocol and SAL checksum are valid")
serval.prefs.names_file = Pref.string("ServiceID names file", "",
    "A text file of '<serviceID hex> <name>' lines; serviceIDs found there are shown with their names")
serval.prefs.transport_handoff = Pref.bool("Hand the transport to Wireshark's TCP/UDP dissectors", false,
    "Hand the TCP/UDP header to Wireshark's dissectors instead of decoding it here (their ports are 0, so sequence "
        .. "analysis mixes every flow between two hosts)")
serval.prefs.control_messages = Pref.bool("Decode registration messages", true,
    "Decode the payload of unconnected datagrams to or from the router serviceID as control-protocol messages")
serval.prefs.router_service = Pref.string("Router serviceID", ROUTER_SERVICE,
    "The router serviceID of the control protocol (64 hex digits; default: the serviceID of the name serval.router)")

-------------------------------------------------------------------------------------------------------------------
-- Helpers (arithmetic only)
-------------------------------------------------------------------------------------------------------------------

local function has_bit(value, bit) return math.floor(value / bit) % 2 == 1 end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- A serviceID given as hex (64 digits, or 0x and 1-64 digits, left-aligned as ServiceId.Parse reads them) -> 64
-- lower-case hex digits, or nil.
local function normalize_service_hex(text)
    text = trim(text):lower()
    local short = false
    if text:sub(1, 2) == "0x" then
        text = text:sub(3)
        short = true
    end
    if #text == 0 or #text > 64 or text:find("[^0-9a-f]") then return nil end
    if #text < 64 and not short then return nil end
    return text .. string.rep("0", 64 - #text)
end

-- Ones' complement sum of the 16-bit big-endian words of a TvbRange (an odd last byte is padded with 0).
local function sum16(range, acc)
    acc = acc or 0
    local bytes = range:bytes()
    local n = bytes:len()
    local i = 0
    while i + 1 < n do
        acc = acc + bytes:get_index(i) * 256 + bytes:get_index(i + 1)
        i = i + 2
    end
    if i < n then acc = acc + bytes:get_index(i) * 256 end
    return acc
end

local function sum_bytes(bytes, acc)
    acc = acc or 0
    local n = bytes:len()
    local i = 0
    while i + 1 < n do
        acc = acc + bytes:get_index(i) * 256 + bytes:get_index(i + 1)
        i = i + 2
    end
    if i < n then acc = acc + bytes:get_index(i) * 256 end
    return acc
end

local function fold(acc)
    while acc > 0xFFFF do acc = (acc % 0x10000) + math.floor(acc / 0x10000) end
    return acc
end

local function flag_names(value, names)
    local out = {}
    for _, pair in ipairs(names) do
        if has_bit(value, pair[1]) then out[#out + 1] = pair[2] end
    end
    return out
end

local CONTROL_FLAGS = { { 0x80, "SYN" }, { 0x40, "RSYN" }, { 0x20, "ACK" }, { 0x10, "NACK" }, { 0x08, "RST" }, { 0x04, "FIN" } }
local TCP_FLAGS = { { 0x002, "SYN" }, { 0x001, "FIN" }, { 0x004, "RST" }, { 0x008, "PSH" }, { 0x010, "ACK" }, { 0x020, "URG" },
    { 0x040, "ECE" }, { 0x080, "CWR" }, { 0x100, "NS" } }

-------------------------------------------------------------------------------------------------------------------
-- ServiceID names
-------------------------------------------------------------------------------------------------------------------

local names = {}
local names_path = nil

local function load_names()
    local path = serval.prefs.names_file or ""
    if path == names_path then return end
    names_path = path
    names = {}
    if path == "" then return end
    local file = io.open(path, "r")
    if not file then
        report_failure("Serval: cannot open the serviceID names file " .. path)
        return
    end
    local number = 0
    local bad = 0
    for line in file:lines() do
        number = number + 1
        line = trim((line:gsub("#.*$", "")))
        if line ~= "" then
            local hex, name = line:match("^(%S+)%s+(.+)$")
            local key = hex and normalize_service_hex(hex)
            if key then
                names[key] = trim(name)
            else
                bad = bad + 1
                if bad == 1 then
                    report_failure("Serval: " .. path .. " line " .. number .. ": expected '<serviceID hex> <name>'")
                end
            end
        end
    end
    file:close()
end

local function service_name(hex)
    load_names()
    local name = names[hex]
    if name then return name end
    if hex == ROUTER_SERVICE then return "serval.router" end
    return nil
end

-- Short form of a serviceID as ServiceId.ToString("s"): 0x and the hex digits without trailing zero nibbles.
local function short_service(hex)
    local s = hex:gsub("0+$", "")
    if s == "" then s = "0" end
    return "0x" .. s
end

-------------------------------------------------------------------------------------------------------------------
-- Field extractors for the pseudo-header of raw-IP links
-------------------------------------------------------------------------------------------------------------------

local ip_src_f = Field.new("ip.src")
local ip_dst_f = Field.new("ip.dst")
local ip6_src_f = Field.new("ipv6.src")
local ip6_dst_f = Field.new("ipv6.dst")

local function last(...)
    local all = { ... }
    return all[#all]
end

-- The IP source and destination of the header the SAL packet sits in, as ByteArrays, or nil.
local function ip_addresses()
    local s4, d4 = last(ip_src_f()), last(ip_dst_f())
    local s6, d6 = last(ip6_src_f()), last(ip6_dst_f())
    if s6 and d6 and (not s4 or s6.offset > s4.offset) then
        return s6.range:bytes(), d6.range:bytes()
    end
    if s4 and d4 then return s4.range:bytes(), d4.range:bytes() end
    return nil
end

-------------------------------------------------------------------------------------------------------------------
-- Control-protocol messages (docs/control-protocol.md §3)
-------------------------------------------------------------------------------------------------------------------

local function dissect_control_message(tvb, pinfo, tree)
    local len = tvb:len()
    local t = tree:add(servalctl, tvb())
    if len < 76 then
        t:add_proto_expert_info(e.ctl_bad, "Control message of " .. len .. " bytes; at least 76 expected")
        return
    end
    local version = tvb(0, 1):uint()
    local mtype = tvb(1, 1):uint()
    local flags = tvb(2, 1):uint()
    t:add(c.version, tvb(0, 1))
    if version ~= 1 then t:add_proto_expert_info(e.ctl_bad, "Unsupported version " .. version) end
    local ti = t:add(c.type, tvb(1, 1))
    if not ctl_types[mtype] then ti:add_proto_expert_info(e.ctl_bad, "Unknown message type " .. mtype) end
    local ft = t:add(c.flags, tvb(2, 1))
    ft:add(c.f_auth, tvb(2, 1))
    ft:add(c.f_drain, tvb(2, 1))
    ft:add(c.f_refresh, tvb(2, 1))
    ft:add(c.f_undef, tvb(2, 1))
    if flags >= 8 then ft:add_proto_expert_info(e.ctl_bad, "Undefined flag bits set") end
    t:add(c.status, tvb(3, 1))
    t:add(c.sender, tvb(4, 8))
    t:add(c.sequence, tvb(12, 4))
    t:add(c.epoch, tvb(16, 8))
    t:add(c.timestamp, tvb(24, 8))
    t:add(c.weight, tvb(32, 4))
    t:add(c.lease, tvb(36, 4))
    t:add(c.prefix_bits, tvb(40, 2))
    local tt = t:add(c.transports, tvb(42, 1))
    tt:add(c.t_stream, tvb(42, 1))
    tt:add(c.t_dgram, tvb(42, 1))
    t:add(c.reserved, tvb(43, 1))
    local hex = tostring(tvb(44, 32):bytes()):lower()
    local si = t:add(c.service_id, tvb(44, 32))
    local name = service_name(hex)
    if name then si:append_text(" (" .. name .. ")") end

    local authenticated = has_bit(flags, 0x01)
    local rest = len - 76 - (authenticated and 32 or 0)
    local targets = 0
    if mtype == 6 and rest >= 0 and rest % 24 == 0 and rest / 24 <= 8 then
        targets = rest / 24
    elseif rest ~= 0 then
        t:add_proto_expert_info(e.ctl_bad, "Length " .. len .. " does not fit the message type and flags")
    end
    local o = 76
    for _ = 1, targets do
        local tr = t:add(c.target, tvb(o, 24))
        local family = tvb(o, 1):uint()
        tr:add(c.t_family, tvb(o, 1))
        tr:add(c.t_reserved, tvb(o + 1, 1))
        tr:add(c.t_port, tvb(o + 2, 2))
        tr:add(c.t_weight, tvb(o + 4, 4))
        if family == 4 then
            tr:add(c.t_addr, tvb(o + 8, 4))
            tr:append_text(": " .. tostring(tvb(o + 8, 4):ipv4()) .. " port " .. tvb(o + 2, 2):uint())
        elseif family == 6 then
            tr:add(c.t_addr6, tvb(o + 8, 16))
            tr:append_text(": " .. tostring(tvb(o + 8, 16):ipv6()) .. " port " .. tvb(o + 2, 2):uint())
        else
            tr:add_proto_expert_info(e.ctl_bad, "Unknown address family " .. family)
        end
        o = o + 24
    end
    if authenticated and len >= o + 32 then t:add(c.mac, tvb(o, 32)) end

    local summary = (ctl_types[mtype] or ("type " .. mtype))
    if mtype == 3 or mtype == 4 or mtype == 6 then summary = summary .. " " .. (ctl_status[tvb(3, 1):uint()] or "?") end
    summary = summary .. " " .. short_service(hex) .. "/" .. tvb(40, 2):uint() .. " seq=" .. tvb(12, 4):uint()
    t:append_text(", " .. summary)
    pinfo.cols.info:append(" [" .. summary .. "]")
end

-------------------------------------------------------------------------------------------------------------------
-- Transport headers inside the SAL (docs/protocol.md §9)
-------------------------------------------------------------------------------------------------------------------

-- Transport checksum: the pseudo-header's addresses are the IP addresses on raw-IP links, the unspecified address on
-- UDP-encapsulation links; a forwarded packet's may use SOURCE[0] as source instead (§9).
local function verify_transport(tvb, offset, length, protocol, state)
    local segment = sum16(tvb(offset, length))
    local base = protocol + length
    local candidates = {}
    if state.encapsulated then
        candidates[#candidates + 1] = base
        if state.source0 then candidates[#candidates + 1] = base + sum_bytes(state.source0) end
    else
        local src, dst = ip_addresses()
        if src then
            candidates[#candidates + 1] = base + sum_bytes(src) + sum_bytes(dst)
            if state.source0 then candidates[#candidates + 1] = base + sum_bytes(state.source0) + sum_bytes(dst) end
        end
    end
    if #candidates == 0 then return nil end
    for _, pseudo in ipairs(candidates) do
        if fold(segment + pseudo) == 0xFFFF then return true end
    end
    return false
end

local function dissect_tcp(tvb, pinfo, tree, offset, state)
    local avail = tvb:len() - offset
    local t = tree:add(f.tcp, tvb(offset))
    if avail < 20 then
        t:add_proto_expert_info(e.tcp_bad, "TCP header truncated: " .. avail .. " bytes")
        return "TCP (truncated)"
    end
    t:add(f.tcp_srcport, tvb(offset, 2))
    t:add(f.tcp_dstport, tvb(offset + 2, 2))
    t:add(f.tcp_seq, tvb(offset + 4, 4))
    t:add(f.tcp_ack, tvb(offset + 8, 4))
    local hl = math.floor(tvb(offset + 12, 1):uint() / 16) * 4
    local hi = t:add(f.tcp_hdr_len, tvb(offset + 12, 1), hl)
    local flags = tvb(offset + 12, 2):uint() % 0x200
    local reserved = math.floor(tvb(offset + 12, 2):uint() / 0x200) % 8
    local ri = t:add(f.tcp_f_res, tvb(offset + 12, 2))
    if reserved ~= 0 then ri:add_proto_expert_info(e.reserved, "Reserved TCP header bits set") end
    local fi = t:add(f.tcp_flags, tvb(offset + 12, 2))
    for _, field in ipairs({ f.tcp_f_ns, f.tcp_f_cwr, f.tcp_f_ece, f.tcp_f_urg, f.tcp_f_ack, f.tcp_f_psh, f.tcp_f_rst,
        f.tcp_f_syn, f.tcp_f_fin }) do
        fi:add(field, tvb(offset + 12, 2))
    end
    local flag_text = table.concat(flag_names(flags, TCP_FLAGS), ",")
    if flag_text == "" then flag_text = "none" end
    fi:append_text(" (" .. flag_text .. ")")
    fi:add(f.tcp_flags_str, tvb(offset + 12, 2), flag_text):set_generated()
    t:add(f.tcp_window, tvb(offset + 14, 2))
    local ck = t:add(f.tcp_checksum, tvb(offset + 16, 2))
    t:add(f.tcp_urgent, tvb(offset + 18, 2))
    if hl < 20 or hl > avail then
        hi:add_proto_expert_info(e.tcp_bad, "TCP data offset " .. hl .. " bytes: below 20 or beyond the segment")
        return "TCP (bad data offset)"
    end
    t:set_len(hl)
    -- Options
    local o = offset + 20
    local stop = offset + hl
    while o < stop do
        local kind = tvb(o, 1):uint()
        if kind == 0 then
            t:add(f.tcp_opt_kind, tvb(o, 1)):append_text(" (EOL)")
            break
        elseif kind == 1 then
            t:add(f.tcp_opt_kind, tvb(o, 1)):append_text(" (NOP)")
            o = o + 1
        else
            if o + 1 >= stop then
                t:add_proto_expert_info(e.tcp_bad, "TCP option " .. kind .. " without a length byte")
                break
            end
            local len = tvb(o + 1, 1):uint()
            if len < 2 or o + len > stop then
                t:add_proto_expert_info(e.tcp_bad, "TCP option " .. kind .. " with bad length " .. len)
                break
            end
            local ok = true
            if kind == 2 then
                if len == 4 then t:add(f.tcp_mss, tvb(o + 2, 2)) else ok = false end
            elseif kind == 3 then
                if len == 3 then t:add(f.tcp_wscale, tvb(o + 2, 1)) else ok = false end
            elseif kind == 4 then
                if len == 2 then t:add(f.tcp_sack_perm, tvb(o, 2), true) else ok = false end
            elseif kind == 5 then
                if len > 2 and (len - 2) % 8 == 0 then
                    local k = o + 2
                    while k + 8 <= o + len do
                        t:add(f.tcp_sack_le, tvb(k, 4))
                        t:add(f.tcp_sack_re, tvb(k + 4, 4))
                        k = k + 8
                    end
                else
                    ok = false
                end
            elseif kind == 8 then
                if len == 10 then
                    t:add(f.tcp_ts_val, tvb(o + 2, 4))
                    t:add(f.tcp_ts_ecr, tvb(o + 6, 4))
                else
                    ok = false
                end
            else
                local oi = t:add(f.tcp_opt_kind, tvb(o, 1))
                oi:append_text(" (unknown option, skipped)")
                t:add(f.tcp_opt_len, tvb(o + 1, 1))
            end
            if not ok then
                t:add_proto_expert_info(e.tcp_bad, "TCP option " .. kind .. " with bad length " .. len)
                break
            end
            o = o + len
        end
    end
    local payload = avail - hl
    t:add(f.tcp_len, tvb(offset, hl), payload):set_generated()
    local verified = verify_transport(tvb, offset, avail, 6, state)
    if verified == true then
        ck:append_text(" [correct]")
        ck:add(f.tcp_checksum_status, tvb(offset + 16, 2), 1):set_generated()
    elseif verified == false then
        ck:append_text(" [incorrect]")
        ck:add(f.tcp_checksum_status, tvb(offset + 16, 2), 0):set_generated()
        ck:add_proto_expert_info(e.tcp_bad_checksum)
    else
        ck:add(f.tcp_checksum_status, tvb(offset + 16, 2), 2):set_generated()
    end
    if payload > 0 then state.payload = { offset + hl, payload } end
    return string.format("TCP [%s] seq=%d ack=%d win=%d len=%d", flag_text, tvb(offset + 4, 4):uint(),
        tvb(offset + 8, 4):uint(), tvb(offset + 14, 2):uint(), payload)
end

local function dissect_udp(tvb, pinfo, tree, offset, state)
    local avail = tvb:len() - offset
    local t = tree:add(f.udp, tvb(offset))
    if avail < 8 then
        t:add_proto_expert_info(e.udp_bad, "UDP header truncated: " .. avail .. " bytes")
        return "UDP (truncated)"
    end
    t:set_len(8)
    t:add(f.udp_srcport, tvb(offset, 2))
    t:add(f.udp_dstport, tvb(offset + 2, 2))
    local ulen = tvb(offset + 4, 2):uint()
    local li = t:add(f.udp_length, tvb(offset + 4, 2))
    local ck = t:add(f.udp_checksum, tvb(offset + 6, 2))
    if ulen < 8 or ulen > avail then
        li:add_proto_expert_info(e.udp_bad, "UDP length " .. ulen .. ": below 8 or beyond the " .. avail .. " bytes present")
        return "UDP (bad length)"
    end
    local payload = ulen - 8
    t:add(f.udp_len, tvb(offset + 4, 2), payload):set_generated()
    if tvb(offset + 6, 2):uint() == 0 then
        ck:append_text(" [not computed]")
        ck:add(f.udp_checksum_status, tvb(offset + 6, 2), 2):set_generated()
    else
        local verified = verify_transport(tvb, offset, ulen, 17, state)
        if verified == true then
            ck:append_text(" [correct]")
            ck:add(f.udp_checksum_status, tvb(offset + 6, 2), 1):set_generated()
        elseif verified == false then
            ck:append_text(" [incorrect]")
            ck:add(f.udp_checksum_status, tvb(offset + 6, 2), 0):set_generated()
            ck:add_proto_expert_info(e.udp_bad_checksum)
        else
            ck:add(f.udp_checksum_status, tvb(offset + 6, 2), 2):set_generated()
        end
    end
    if payload > 0 then state.payload = { offset + 8, payload } end
    return string.format("UDP len=%d", payload)
end

-------------------------------------------------------------------------------------------------------------------
-- Extensions (docs/protocol.md §3)
-------------------------------------------------------------------------------------------------------------------

local function add_service(tvb, et, o, state)
    et:add(f.svc_reserved, tvb(o + 2, 2))
    if tvb(o + 2, 2):uint() ~= 0 then et:add_proto_expert_info(e.reserved, "SERVICE reserved bytes not 0") end
    local range = tvb(o + 4, 32)
    local hex = tostring(range:bytes()):lower()
    local role
    if state.dst_service == nil then
        state.dst_service = hex
        role = "destination"
        et:add(f.svc_dst, range)
    else
        state.src_service = hex
        role = "source"
        et:add(f.svc_src, range)
    end
    local si = et:add(f.svc_id, range)
    local name = service_name(hex)
    if name then
        si:append_text(" (" .. name .. ")")
        et:add(f.svc_name, range, name):set_generated()
    end
    et:append_text(": " .. role .. " " .. hex .. (name and (" (" .. name .. ")") or ""))
end

local function add_source(tvb, et, o, len, v6, state)
    local size = v6 and 16 or 4
    local max = v6 and 15 or 20
    if len < 4 then
        et:add_proto_expert_info(e.bad_ext, (v6 and "SOURCE6" or "SOURCE") .. " of " .. len .. " bytes has no room for its reserved bytes")
        return
    end
    et:add(f.src_reserved, tvb(o + 2, 2))
    local body = len - 4
    if body % size ~= 0 then
        et:add_proto_expert_info(e.bad_ext, (v6 and "SOURCE6" or "SOURCE") .. " body of " .. body .. " bytes is not a whole number of addresses")
    end
    local n = math.floor(body / size)
    et:add(f.src_count, tvb(o + 1, 1), n):set_generated()
    if n < 2 or n > max then
        et:add_proto_expert_info(e.bad_ext, "Holds " .. n .. " addresses; 2 to " .. max .. " allowed")
    end
    local list = {}
    for i = 0, n - 1 do
        local range = tvb(o + 4 + i * size, size)
        if v6 then
            et:add(f.src_addr6, range)
            list[#list + 1] = tostring(range:ipv6())
        else
            et:add(f.src_addr, range)
            list[#list + 1] = tostring(range:ipv4())
        end
        if i == 0 then state.source0 = range:bytes() end
    end
    et:append_text(": " .. table.concat(list, ", "))
    state.route = table.concat(list, ",")
end

-- Walks exactly the extension area [12, hl). Returns false when a rule of §3 is broken.
local function dissect_extensions(tvb, tree, hl, state)
    local o = 12
    local count = 0
    local seen = { control = 0, service = 0, source = 0, path = 0 }
    local ok = true
    while o < hl do
        if count == 10 then
            tree:add_proto_expert_info(e.too_many_ext)
            return false
        end
        count = count + 1
        state.ext_count = count
        local type = math.floor(tvb(o, 1):uint() / 16)
        if type == 0 then
            local et = tree:add(f.ext, tvb(o, 1))
            et:set_text("Extension: PAD")
            et:add(f.ext_type, tvb(o, 1))
            o = o + 1
        else
            if o + 1 >= hl then
                local et = tree:add(f.ext, tvb(o, hl - o))
                et:set_text("Extension: " .. (ext_types[type] or ("type " .. type)) .. " (no room for its length)")
                et:add(f.ext_type, tvb(o, 1))
                et:add_proto_expert_info(e.bad_ext, "Extension without room for its length byte")
                return false
            end
            local len = tvb(o + 1, 1):uint()
            local span = math.min(math.max(len, 2), hl - o)
            local et = tree:add(f.ext, tvb(o, span))
            et:set_text("Extension: " .. (ext_types[type] or ("unknown type " .. type)))
            et:add(f.ext_type, tvb(o, 1))
            et:add(f.ext_type_low, tvb(o, 1))
            if tvb(o, 1):uint() % 16 ~= 0 then et:add_proto_expert_info(e.reserved, "Low nibble of the type byte not 0") end
            et:add(f.ext_len, tvb(o + 1, 1))
            if len < 2 or o + len > hl then
                et:add_proto_expert_info(e.bad_ext, "Extension length " .. len .. ": below 2 or past the SAL header (" .. (hl - o) .. " bytes left)")
                return false
            end
            if type == 1 then
                seen.control = seen.control + 1
                if len ~= 20 then
                    et:add_proto_expert_info(e.bad_ext, "CONTROL is 20 bytes, not " .. len)
                    ok = false
                else
                    local flags = tvb(o + 2, 1):uint()
                    local fi = et:add(f.ctrl_flags, tvb(o + 2, 1))
                    for _, field in ipairs({ f.ctrl_syn, f.ctrl_rsyn, f.ctrl_ack, f.ctrl_nack, f.ctrl_rst, f.ctrl_fin, f.ctrl_flags_res }) do
                        fi:add(field, tvb(o + 2, 1))
                    end
                    local text = table.concat(flag_names(flags, CONTROL_FLAGS), "|")
                    if text == "" then text = "none" end
                    fi:append_text(" (" .. text .. ")")
                    fi:add(f.ctrl_flags_str, tvb(o + 2, 1), text):set_generated()
                    if flags % 4 ~= 0 then fi:add_proto_expert_info(e.reserved, "Reserved CONTROL flag bits 0x03 set") end
                    et:add(f.ctrl_reserved, tvb(o + 3, 1))
                    et:add(f.ctrl_verno, tvb(o + 4, 4))
                    et:add(f.ctrl_ackno, tvb(o + 8, 4))
                    et:add(f.ctrl_nonce, tvb(o + 12, 8))
                    et:append_text(string.format(": %s verno=%d ackno=%d nonce=%s", text, tvb(o + 4, 4):uint(),
                        tvb(o + 8, 4):uint(), tostring(tvb(o + 12, 8):bytes()):lower()))
                    state.control = text
                end
                if seen.control > 1 then
                    et:add_proto_expert_info(e.duplicate_ext, "Second CONTROL extension")
                    ok = false
                end
            elseif type == 2 then
                seen.service = seen.service + 1
                if len ~= 36 then
                    et:add_proto_expert_info(e.bad_ext, "SERVICE is 36 bytes, not " .. len)
                    ok = false
                else
                    add_service(tvb, et, o, state)
                end
                if seen.service > 2 then
                    et:add_proto_expert_info(e.duplicate_ext, "Third SERVICE extension")
                    ok = false
                end
            elseif type == 3 then
                if len < 12 then
                    et:add_proto_expert_info(e.bad_ext, "ADDRESS is at least 12 bytes, not " .. len)
                    ok = false
                else
                    et:add(f.addr_body, tvb(o + 2, len - 2))
                    et:add_proto_expert_info(e.ignored, "ADDRESS is defined by the reference and never used; receivers ignore it")
                end
            elseif type == 4 or type == 5 then
                seen.source = seen.source + 1
                add_source(tvb, et, o, len, type == 5, state)
                local size = type == 5 and 16 or 4
                local n = (len - 4) / size
                if len < 4 or (len - 4) % size ~= 0 or n < 2 or n > (type == 5 and 15 or 20) then ok = false end
                if seen.source > 1 then
                    et:add_proto_expert_info(e.duplicate_ext, "Second SOURCE/SOURCE6 extension")
                    ok = false
                end
            elseif type == 6 then
                seen.path = seen.path + 1
                if len ~= 12 then
                    et:add_proto_expert_info(e.bad_ext, "PATH is 12 bytes, not " .. len)
                    ok = false
                else
                    local fi = et:add(f.path_flags, tvb(o + 2, 1))
                    fi:add(f.path_response, tvb(o + 2, 1))
                    et:add(f.path_reserved, tvb(o + 3, 1))
                    et:add(f.path_challenge, tvb(o + 4, 8))
                    local response = has_bit(tvb(o + 2, 1):uint(), 0x01)
                    et:append_text(": " .. (response and "response " or "challenge ") .. tostring(tvb(o + 4, 8):bytes()):lower())
                    state.path = response and "PATH response" or "PATH challenge"
                end
                if seen.path > 1 then
                    et:add_proto_expert_info(e.duplicate_ext, "Second PATH extension")
                    ok = false
                end
            else
                et:add_proto_expert_info(e.unknown_ext, "Extension type " .. type .. " is not defined (0-6)")
                return false
            end
            o = o + len
        end
    end
    state.ext_count = count
    return ok
end

-------------------------------------------------------------------------------------------------------------------
-- The SAL packet
-------------------------------------------------------------------------------------------------------------------

local data_dissector = Dissector.get("data")

local function dissect_sal(tvb, pinfo, tree, encapsulated)
    local len = tvb:len()
    pinfo.cols.protocol = "Serval"
    local t = tree:add(serval, tvb())
    local state = { encapsulated = encapsulated }
    if len < 12 then
        t:add_proto_expert_info(e.truncated, "SAL packet of " .. len .. " bytes; the base header is 12")
        pinfo.cols.info = "Serval: truncated (" .. len .. " bytes)"
        return len
    end

    local src_flow = tvb(0, 4):uint()
    local dst_flow = tvb(4, 4):uint()
    t:add(f.src_flow, tvb(0, 4))
    t:add(f.dst_flow, tvb(4, 4))
    t:add(f.flow, tvb(0, 4)):set_hidden()
    t:add(f.flow, tvb(4, 4)):set_hidden()
    local words = tvb(8, 1):uint()
    local hl = words * 4
    local hi = t:add(f.hdr_len, tvb(8, 1))
    hi:append_text(" (" .. hl .. " bytes)")
    t:add(f.hdr_bytes, tvb(8, 1), hl):set_generated()
    local protocol = tvb(9, 1):uint()
    local pi = t:add(f.protocol, tvb(9, 1))
    local ck = t:add(f.checksum, tvb(10, 2))
    local info = string.format("%d \226\134\146 %d", src_flow, dst_flow)
    pinfo.cols.info = "Serval " .. info
    t:append_text(string.format(", Src flow: %d, Dst flow: %d", src_flow, dst_flow))

    if hl < 12 or hl > len then
        hi:add_proto_expert_info(e.bad_hdr_len, "Header length " .. hl .. " bytes: below 12 or beyond the " .. len .. " bytes present")
        ck:add(f.checksum_status, tvb(10, 2), 2):set_generated()
        pinfo.cols.info:append(" [malformed: bad header length]")
        return len
    end
    t:set_len(hl)

    if fold(sum16(tvb(0, hl))) == 0xFFFF then
        ck:append_text(" [correct]")
        ck:add(f.checksum_status, tvb(10, 2), 1):set_generated()
    else
        ck:append_text(" [incorrect]")
        ck:add(f.checksum_status, tvb(10, 2), 0):set_generated()
        ck:add_proto_expert_info(e.bad_checksum, "Bad SAL checksum (over the " .. hl .. "-byte header)")
        pinfo.cols.info:append(" [bad SAL checksum]")
    end
    if protocols[protocol] == nil then
        pi:add_proto_expert_info(e.bad_protocol, "Protocol " .. protocol .. " is neither 6 (TCP) nor 17 (UDP)")
    end

    local ext_ok = dissect_extensions(tvb, t, hl, state)
    t:add(f.ext_count, tvb(8, 1), state.ext_count or 0):set_generated()
    local control_only = hl == len
    t:add(f.control_only, tvb(8, 1), control_only):set_generated()

    local parts = {}
    if state.control then parts[#parts + 1] = "[" .. state.control .. "]" end
    parts[#parts + 1] = info
    if state.dst_service then
        local name = service_name(state.dst_service)
        parts[#parts + 1] = "dst " .. short_service(state.dst_service) .. (name and (" (" .. name .. ")") or "")
    end
    if state.src_service then
        local name = service_name(state.src_service)
        parts[#parts + 1] = "src " .. short_service(state.src_service) .. (name and (" (" .. name .. ")") or "")
    end
    if state.route then parts[#parts + 1] = "source " .. state.route end
    if state.path then parts[#parts + 1] = state.path end
    if not ext_ok then parts[#parts + 1] = "[malformed extensions]" end

    if control_only then
        parts[#parts + 1] = "(control only)"
    elseif protocols[protocol] then
        if serval.prefs.transport_handoff then
            local name = protocol == 6 and "tcp" or "udp"
            pinfo.cols.info = "Serval " .. table.concat(parts, " ") .. " | "
            pinfo.cols.info:fence()
            Dissector.get(name):call(tvb(hl):tvb(), pinfo, tree)
            return len
        end
        local summary
        if protocol == 6 then
            summary = dissect_tcp(tvb, pinfo, t, hl, state)
        else
            summary = dissect_udp(tvb, pinfo, t, hl, state)
        end
        parts[#parts + 1] = summary
    end
    pinfo.cols.info = "Serval " .. table.concat(parts, " ")

    if state.payload then
        local po, pl = state.payload[1], state.payload[2]
        local payload = tvb(po, pl):tvb()
        local router = normalize_service_hex(serval.prefs.router_service or "") or ROUTER_SERVICE
        if protocol == 17 and serval.prefs.control_messages and state.dst_service and state.src_service and dst_flow == 0
            and (state.dst_service == router or state.src_service == router) then
            dissect_control_message(payload, pinfo, tree)
        else
            t:add(f.payload, tvb(po, pl))
            data_dissector:call(payload, pinfo, tree)
        end
    end
    return len
end

local function dissect_guarded(tvb, pinfo, tree, encapsulated)
    local ok, result = pcall(dissect_sal, tvb, pinfo, tree, encapsulated)
    if ok then return result end
    local t = tree:add(serval, tvb())
    t:add_proto_expert_info(e.lua_error, "Dissector error: " .. tostring(result))
    return tvb:len()
end

function serval.dissector(tvb, pinfo, tree)
    -- Called from the ip.proto table (match 144) or the udp.port table (match = a port).
    return dissect_guarded(tvb, pinfo, tree, pinfo.match_uint ~= 144)
end

-- Heuristic for SAL packets on UDP ports outside the preference: a valid header length and protocol, an extension
-- area that starts with a defined type, and a SAL checksum that verifies.
local function heuristic(tvb, pinfo, tree)
    if not serval.prefs.heuristic then return false end
    local len = tvb:len()
    if len < 12 then return false end
    local hl = tvb(8, 1):uint() * 4
    if hl < 12 or hl > len then return false end
    local protocol = tvb(9, 1):uint()
    if protocol ~= 6 and protocol ~= 17 then return false end
    if hl > 12 and math.floor(tvb(12, 1):uint() / 16) > 6 then return false end
    if fold(sum16(tvb(0, hl))) ~= 0xFFFF then return false end
    dissect_guarded(tvb, pinfo, tree, true)
    return true
end

-------------------------------------------------------------------------------------------------------------------
-- Registration
-------------------------------------------------------------------------------------------------------------------

local udp_table = DissectorTable.get("udp.port")
local registered_ports = nil

local function register_ports()
    local ports = tostring(serval.prefs.udp_ports or DEFAULT_UDP_PORTS)
    if ports == registered_ports then return end
    if registered_ports and registered_ports ~= "" then udp_table:remove(registered_ports, serval) end
    if ports ~= "" then udp_table:add(ports, serval) end
    registered_ports = ports
end

function serval.prefs_changed()
    register_ports()
    load_names()
end

DissectorTable.get("ip.proto"):add(144, serval)
register_ports()
serval:register_heuristic("udp", heuristic)
