--- Device rules: which device nodes a container may make (mknod) and open,
-- as docker's (runc's allowed devices) plus those given with --device;
-- docker's HOST[:CTR][:rwm] format; and the rules as what each cgroup
-- version takes: lines for v1's devices controller, an eBPF program for v2.
local lfs = require "lfs"

local M = {}

local ANY = -1

--- A rule: { type = "c"|"b"|"a", major, minor (ANY: every one), access = "rwm" }.
-- Everything not allowed by a rule is denied.
M.DEFAULT_RULES = {
  { type = "c", major = ANY, minor = ANY, access = "m" }, -- mknod of anything: opening is another matter
  { type = "b", major = ANY, minor = ANY, access = "m" },
  { type = "c", major = 1, minor = 3, access = "rwm" },   -- null
  { type = "c", major = 1, minor = 5, access = "rwm" },   -- zero
  { type = "c", major = 1, minor = 7, access = "rwm" },   -- full
  { type = "c", major = 1, minor = 8, access = "rwm" },   -- random
  { type = "c", major = 1, minor = 9, access = "rwm" },   -- urandom
  { type = "c", major = 5, minor = 0, access = "rwm" },   -- tty
  { type = "c", major = 5, minor = 1, access = "rwm" },   -- console
  { type = "c", major = 5, minor = 2, access = "rwm" },   -- ptmx
  { type = "c", major = 136, minor = ANY, access = "rwm" }, -- the pseudo-terminals
  { type = "c", major = 10, minor = 200, access = "rwm" }, -- tun
}

-- major and minor of a dev_t, as glibc's gnu_dev_major/minor
local function split_rdev(rdev)
  return ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff), (rdev & 0xff) | ((rdev >> 12) & ~0xff)
end

--- The device node at host path `path`: { type, major, minor, mode }
-- | nil, reason.
function M.node(path)
  local attr = lfs.attributes(path)
  if not attr then return nil, "no such device: " .. path end
  local kind = attr.mode == "char device" and "c" or attr.mode == "block device" and "b"
  if not kind then return nil, path .. " is not a device node" end
  local major, minor = split_rdev(attr.rdev)
  local mode = 0
  for i = 1, 9 do
    if attr.permissions:sub(i, i) ~= "-" then mode = mode | (1 << (9 - i)) end
  end
  return { type = kind, major = major, minor = minor, mode = mode }
end

--- docker's --device HOST[:CONTAINER][:PERMISSIONS]: { host, target, type,
-- major, minor, mode, access } | nil, reason.
function M.parse(text)
  local parts = {}
  for part in (text .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = part end
  local host, target, access = parts[1], parts[2], parts[3]
  if #parts == 2 and target:match("^[rwm]+$") then target, access = nil, target end
  if #parts > 3 or host == "" or host:sub(1, 1) ~= "/" then
    return nil, string.format("%q: use HOST[:CONTAINER][:rwm] with absolute paths", text)
  end
  target = (target ~= nil and target ~= "") and target or host
  access = access or "rwm"
  if target:sub(1, 1) ~= "/" or not access:match("^[rwm]+$") then
    return nil, string.format("%q: use HOST[:CONTAINER][:rwm] with absolute paths", text)
  end
  local node, msg = M.node(host)
  if not node then return nil, msg end
  node.host, node.target, node.access = host, target, access
  return node
end

-- Not devices of the host's own, but what every container has of its own.
local NOT_HOST_DEVICES = {
  ["/dev/pts"] = true, ["/dev/shm"] = true, ["/dev/mqueue"] = true, ["/dev/console"] = true, ["/dev/ptmx"] = true,
}

--- Every device node under the host's /dev, for --privileged, as parse
-- gives them.
function M.host_devices()
  local found = {}
  local function walk(dir)
    for name in lfs.dir(dir) do
      local path = dir .. "/" .. name
      local mode = name ~= "." and name ~= ".." and not NOT_HOST_DEVICES[path] and lfs.symlinkattributes(path, "mode")
      if mode == "directory" then
        walk(path)
      elseif mode == "char device" or mode == "block device" then
        local node = M.node(path)
        node.host, node.target, node.access = path, path, "rwm"
        found[#found + 1] = node
      end
    end
  end
  walk("/dev")
  return found
end

--- The rules of a container given `devices` (from parse). @return list
function M.rules(devices)
  local rules = {}
  for i, rule in ipairs(M.DEFAULT_RULES) do rules[i] = rule end
  for _, d in ipairs(devices) do
    rules[#rules + 1] = { type = d.type, major = d.major, minor = d.minor, access = d.access }
  end
  return rules
end

--- The rules as cgroup v1 devices.allow lines ("c 1:3 rwm"), after a
-- "a" written to devices.deny.
function M.v1_lines(rules)
  local lines = {}
  for i, r in ipairs(rules) do
    local function number(n) return n == ANY and "*" or tostring(n) end
    lines[i] = string.format("%s %s:%s %s", r.type, number(r.major), number(r.minor), r.access)
  end
  return lines
end

-- eBPF, as struct bpf_insn: opcode, dst and src registers, offset, immediate.
local function insn(code, dst, src, off, imm)
  return string.pack("<BBi2i4", code, dst | (src << 4), off, imm)
end
local LDX_W = 0x61      -- dst = *(u32 *)(src + off)
local AND_K = 0x54      -- dst &= imm (32 bits)
local RSH_K = 0x74      -- dst >>= imm (32 bits)
local MOV_X = 0xbc      -- dst = src (32 bits)
local MOV64_K = 0xb7    -- dst = imm
local JNE_K = 0x55      -- if dst != imm: skip off instructions
local EXIT = 0x95
local ACCESS_BITS = { m = 1, r = 2, w = 4 }  -- BPF_DEVCG_ACC_*
local TYPE_CODES = { b = 1, c = 2 }          -- BPF_DEVCG_DEV_*

--- The rules as a cgroup device program (bpf(2) instructions, for
-- core.bpf_device_program): the first rule that matches the access
-- allows it; none matching denies it, as runc's and crun's programs do.
function M.bpf_program(rules)
  -- the context, struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor
  local code = {
    insn(LDX_W, 2, 1, 0, 0), insn(AND_K, 2, 0, 0, 0xffff), -- r2: type
    insn(LDX_W, 3, 1, 0, 0), insn(RSH_K, 3, 0, 0, 16),     -- r3: access
    insn(LDX_W, 4, 1, 4, 0),                              -- r4: major
    insn(LDX_W, 5, 1, 8, 0),                              -- r5: minor
  }
  for _, r in ipairs(rules) do
    local block = {}
    if r.type ~= "a" then block[#block + 1] = { JNE_K, 2, TYPE_CODES[r.type] } end
    local allowed = 0
    for c in r.access:gmatch(".") do allowed = allowed | ACCESS_BITS[c] end
    if allowed ~= 7 then
      -- any access asked for that the rule does not give: not this rule
      block[#block + 1] = { MOV_X, 1, 3 }
      block[#block + 1] = { AND_K, 1, ~allowed & 7 }
      block[#block + 1] = { JNE_K, 1, 0 }
    end
    if r.major ~= ANY then block[#block + 1] = { JNE_K, 4, r.major } end
    if r.minor ~= ANY then block[#block + 1] = { JNE_K, 5, r.minor } end
    local n = #block + 2 -- and the allow: r0 = 1, exit
    for i, op in ipairs(block) do
      if op[1] == JNE_K then
        code[#code + 1] = insn(JNE_K, op[2], 0, n - i, op[3]) -- to the next rule
      elseif op[1] == MOV_X then
        code[#code + 1] = insn(MOV_X, op[2], op[3], 0, 0)
      else
        code[#code + 1] = insn(op[1], op[2], 0, 0, op[3])
      end
    end
    code[#code + 1] = insn(MOV64_K, 0, 0, 0, 1)
    code[#code + 1] = insn(EXIT, 0, 0, 0, 0)
  end
  code[#code + 1] = insn(MOV64_K, 0, 0, 0, 0)
  code[#code + 1] = insn(EXIT, 0, 0, 0, 0)
  return table.concat(code)
end

return M
