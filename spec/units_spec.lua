-- Parsing what users type; the serialization of the handoff; option parsing.
local options = require "lbox.options"
local units = require "lbox.units"
local users = require "lbox.users"
local wire = require "lbox.wire"

describe("units", function()
  it("parses sizes", function()
    assert.are.equal(100 * 1024 * 1024, units.size("100m"))
    assert.are.equal(1024 ^ 3, units.size("1G"))
    assert.are.equal(512 * 1024, units.size("512kb"))
    assert.are.equal(1536 * 1024 * 1024, units.size("1.5g"))
    assert.are.equal(4096, units.size("4096"))
    for _, bad in ipairs { "100x", "-5m", "", "m", "0", "1.2.3m", " 1m" } do
      local value, msg = units.size(bad)
      assert.is_nil(value, bad)
      assert.matches("invalid size", msg)
    end
  end)
  it("writes sizes back as a user would", function()
    assert.are.same({ "6m", "1g", "1536k", "100b", "1025b" },
      { units.format_size(6 * 1024 * 1024), units.format_size(1024 ^ 3 // 1), units.format_size(1536 * 1024),
        units.format_size(100), units.format_size(1025) })
  end)
  it("parses cpu lists", function()
    assert.are.same({ 0, 1, 2, 4 }, units.cpu_list("0-2,4"))
    assert.are.same({ 1, 3 }, units.cpu_list("3,1,3"))
    for _, bad in ipairs { "a", "1-", "2-1", "1,,2", "", "-1" } do
      assert.is_nil(units.cpu_list(bad), bad)
    end
  end)
  it("parses numbers within bounds", function()
    assert.are.equal(1.5, units.decimal("1.5"))
    assert.is_nil(units.decimal("0"))
    assert.is_nil(units.decimal("-1"))
    assert.are.equal(512, units.integer("512", 2, 262144))
    assert.is_nil(units.integer("1", 2, 262144))
    assert.is_nil(units.integer("1.5", 0, 10))
  end)
end)

describe("users", function()
  local passwd = "root:x:0:0:root:/root:/bin/sh\n# a comment\nbuilder:x:1000:1000::/home/builder:/bin/sh\n"
    .. "nohome:x:1001:1001:::/bin/sh\n"
  local group = "root:x:0:\nbuilder:x:1000:\ndisk:x:6:builder,nohome\nvideo:x:44:nohome, builder\n"

  it("parses USER[:GROUP] with names or numbers", function()
    assert.are.same({ "builder" }, { users.parse("builder") })
    assert.are.same({ "1000", "44" }, { users.parse("1000:44") })
    assert.are.same({ "builder", "video" }, { users.parse("builder:video") })
    for _, bad in ipairs { "", ":0", "a b", "a:b:c", "-x", "a:b c" } do assert.is_nil(users.parse(bad), bad) end
  end)

  it("resolves as docker does: primary and listed groups, HOME from the entry", function()
    assert.are.same({ uid = 1000, gid = 1000, groups = { 1000, 6, 44 }, home = "/home/builder" },
      users.resolve("builder", nil, passwd, group))
    assert.are.same({ uid = 1000, gid = 44, groups = { 44 }, home = "/home/builder" },
      users.resolve("1000", "video", passwd, group))
    assert.are.same({ uid = 1001, gid = 7, groups = { 7 }, home = "/" }, users.resolve("nohome", "7", passwd, group))
    -- a number needs no entry: group 0, HOME / (or /root for uid 0)
    assert.are.same({ uid = 4242, gid = 0, groups = { 0 }, home = "/" }, users.resolve("4242", nil, passwd, group))
    assert.are.same({ uid = 0, gid = 0, groups = { 0 }, home = "/root" }, users.resolve("0", nil, nil, nil))
  end)

  it("names what it cannot find", function()
    assert.are.same({ nil, "unable to find user ghost: no matching entries in /etc/passwd" },
      { users.resolve("ghost", nil, passwd, group) })
    assert.are.same({ nil, "unable to find group ghosts: no matching entries in /etc/group" },
      { users.resolve("builder", "ghosts", passwd, group) })
    assert.matches("ids go up to 4294967294", select(2, users.resolve("4294967295", nil, passwd, group)))
  end)
end)

describe("wire", function()
  it("round-trips any bytes and nested tables", function()
    local value = { command = { "a b", "'\"", "\n", "", "\255\254\0" }, n = 3, x = 1.5, t = true, f = false,
                    nested = { deep = { 1, 2, 3 } } }
    assert.are.same(value, wire.decode(wire.encode(value)))
  end)
  it("rejects truncated and trailing data", function()
    local data = wire.encode { command = { "x" } }
    for cut = 1, #data - 1 do
      local value, msg = wire.decode(data:sub(1, cut))
      assert.is_nil(value)
      assert.matches("^wire: ", msg)
    end
    assert.is_nil(wire.decode(data .. "x"))
  end)
  it("refuses what cannot travel", function()
    assert.has_error(function() wire.encode { f = print } end, "wire: cannot send a function")
  end)
end)

describe("options", function()
  local defs = {
    { "interactive", short = "i" }, { "tty", short = "t" },
    { "memory", short = "m", value = "SIZE", aliases = { "mem" } },
    { "env", short = "e", value = "E", list = true },
  }
  it("parses docker-style options up to the command", function()
    local opts, first = options.parse(defs, { "-it", "-m100m", "--env=A=1", "-e", "B=2", "sh", "-c", "x" })
    assert.are.same({ interactive = true, tty = true, memory = "100m", env = { "A=1", "B=2" } }, opts)
    assert.are.equal(6, first)
    opts, first = options.parse(defs, { "-mem", "5m", "--", "-it" })
    assert.are.same({ memory = "5m" }, opts)
    assert.are.equal(4, first)
  end)
  it("names unknown flags and missing values", function()
    assert.has_error(function() options.parse(defs, { "--bogus" }) end)
    assert.has_error(function() options.parse(defs, { "-ix" }) end)
    assert.has_error(function() options.parse(defs, { "-m" }) end)
    assert.has_error(function() options.parse(defs, { "--tty=yes" }) end)
  end)
end)
