-- The lbox command line (lbox.cli, lbox.options): every command and recipe
-- answers --help from its option table, and refuses a wrong number of
-- operands with its usage line.
local helper = require "helper"
local options = require "lbox.options"

local COMMANDS = { "run", "image", "commit", "export", "ps", "logs", "exec", "stop", "kill", "wait", "rm",
                   "inspect", "stats", "top", "cp", "pause", "unpause", "restart", "bench", "bench_pull", "network",
                   "network create", "network ls", "network inspect", "network rm", "examples/matrix",
                   "examples/pipeline", "examples/sandbox", "examples/lua_payload", "examples/network" }

describe("lbox's command line", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("answers --help and -h for every command and recipe, exit 0, from its options", function()
    for _, command in ipairs(COMMANDS) do
      -- as docker, run's -h is --hostname
      for _, flag in ipairs(command == "run" and { "--help" } or { "--help", "-h" }) do
        local argv = {}
        for word in command:gmatch("%S+") do argv[#argv + 1] = word end
        argv[#argv + 1] = flag
        local r = helper.lbox_run(argv)
        assert.are.equal(0, r.code, command .. " " .. flag .. ": " .. r.err)
        assert.are.equal("", r.err, command)
        assert.matches("^usage: lbox " .. command:gsub("%p", "%%%0") .. "[ \n]", r.out, command)
        if command ~= "image" then assert.matches("\n  [%-h, ]*%-%-help +show this help", r.out, command) end
      end
    end
    -- each option of a table has its line
    local kill = helper.lbox_run({ "kill", "--help" }).out
    assert.matches("\n  %-s, %-%-signal SIGNAL +the signal", kill)
  end)

  it("refuses a wrong number of operands with the usage line, exit 125", function()
    for _, args in ipairs { { "kill" }, { "stop" }, { "rm" }, { "exec", "x" }, { "logs" }, { "logs", "a", "b" },
                            { "wait" }, { "inspect" }, { "commit", "x" }, { "export", "x", "y", "z" },
                            { "ps", "extra" }, { "network" }, { "network", "create" }, { "network", "ls", "x" },
                            { "network", "rm" }, { "top" }, { "cp", "x:/a" }, { "pause" }, { "unpause" },
                            { "restart" } } do
      local r = helper.lbox_run(args)
      assert.are.equal(125, r.code, table.concat(args, " ") .. ": " .. r.err)
      assert.matches("^lbox: error: usage: lbox " .. args[1] .. " [^\n]+ %(see %-%-help%)\n$", r.err)
    end
  end)

  it("parses docker-style options: combined, inline, repeated, and -- to end them", function()
    local defs = { { "interactive", short = "i" }, { "tty", short = "t" }, { "memory", short = "m", value = "SIZE" },
                   { "env", short = "e", value = "NAME=VALUE", list = true } }
    local opts, first = options.parse(defs, { "-it", "-m100m", "--env=A=1", "-e", "B=2", "--", "-x" })
    assert.are.same({ interactive = true, tty = true, memory = "100m", env = { "A=1", "B=2" } }, opts)
    assert.are.equal(7, first)
    assert.has_error(function() options.parse(defs, { "--nope" }) end)
    assert.has_error(function() options.parse(defs, { "-m" }) end)
    assert.has_error(function() options.parse(defs, { "--tty=yes" }) end)
  end)
end)
