-- The REPL, driven through a real pseudo-terminal: type, read the screen.
local core = require "lbox.core"
local helper = require "helper"

local function screen(term)
  return (term.output:gsub("\27%[[%d;?]*[A-Za-z]", ""):gsub("\r", ""))
end

-- Wait until the screen (escape sequences and \r removed) matches `pattern`.
local function wait_for(term, pattern, timeout)
  for _ = 1, (timeout or 20) * 10 do
    if screen(term):find(pattern) then return true end
    helper.expect(term, "\0never\0", 0.1)
  end
  return screen(term):find(pattern) ~= nil
end

local function type_line(term, text, expect)
  core.write(term.master, text)
  assert.is_true(wait_for(term, expect), "waited for " .. expect .. " in:\n" .. screen(term))
end

describe("the REPL", function()
  local before
  before_each(function() before = helper.snapshot() end)
  after_each(function() helper.assert_no_leaks(before) end)

  it("completes names, fields and methods with Tab", function()
    local term = helper.start_pty({ helper.lbox }, 24, 100)
    assert.is_true(wait_for(term, "> "))
    type_line(term, "lbox.cont\t", "lbox%.container")
    type_line(term, "\21box = lbox.container{command={'true'}}\n", "\n> ")
    type_line(term, "box:sta\t\t", "box:stats")
    assert.matches("box:start", screen(term))
    core.write(term.master, "\21\4")
    assert.are.equal(0, helper.finish_pty(term))
  end)

  it("takes multi-line input, prints values, and survives errors", function()
    local term = helper.start_pty { helper.lbox }
    assert.is_true(wait_for(term, "> "))
    type_line(term, "function twice(x)\n", ">> ")
    type_line(term, "return 2 * x\n", ">> ")
    type_line(term, "end\n", "\n> ")
    type_line(term, "twice(21)\n", "\n42\n")
    type_line(term, "error('boom')\n", "repl:1: boom")
    type_line(term, "{ answer = twice(4), list = { 'a' } }\n", "answer = 8")
    assert.matches('list = {\n%s+%[1%] = "a"', screen(term))
    core.write(term.master, "\4")
    assert.are.equal(0, helper.finish_pty(term))
  end)

  it("interrupts the evaluation in progress on Ctrl-C, leaving the containers as they are", function()
    local term = helper.start_pty { helper.lbox }
    assert.is_true(wait_for(term, "> "))
    -- PID 1 of a pid namespace ignores SIGTERM and SIGINT it has no handler for
    type_line(term, "box = lbox.container{command={'sleep','60'}}:start()\n", "\n> ")
    type_line(term, "box:wait()\n", "box:wait%(%)\n")
    helper.sleep(0.3)
    type_line(term, "\3", "interrupted[^\n]*\n.*> $")
    type_line(term, "box\n", "%(running%)\n> $")
    type_line(term, "n = 0 while true do n = n + 1 end\n", "end\n")
    helper.sleep(0.3)
    type_line(term, "\3", "interrupted[^\n]*\n.*> $")
    type_line(term, "n > 0, box.state\n", "true\t\"running\"\n> $")
    -- the REPL goes on: the container can still be waited for and ended
    type_line(term, "box:kill(9) return box:wait().exit_code\n", "\n137\n> $")
    core.write(term.master, "\4")
    assert.are.equal(0, helper.finish_pty(term))
  end)

  for _, ending in ipairs {
    { "Ctrl-D", function(term) core.write(term.master, "\4") end },
    { "os.exit", function(term) core.write(term.master, "os.exit(3)\n") end, 3 },
    { "SIGTERM", function(term) core.kill(term.pid, core.SIGTERM) end, 0 },
    { "SIGHUP", function(term) core.kill(term.pid, core.SIGHUP) end, 0 },
    { "a hangup (its terminal closes)", function(term)
      -- the terminal goes away: its session gets SIGHUP, its reads fail
      core.close(term.master)
      term.master = assert(core.open("/dev/null"))
    end },
  } do
    it("removes the containers it started when it ends by " .. ending[1], function()
      local term = helper.start_pty { helper.lbox }
      assert.is_true(wait_for(term, "> "))
      type_line(term, "box = lbox.container{command={'sleep','60'}, limits={pids=10}}:start()\n", "\n> ")
      type_line(term, "box\n", "%(running%)")
      assert.are.equal(1, #helper.snapshot().containers)
      ending[2](term)
      assert.are.equal(ending[3] or 0, helper.finish_pty(term))
      -- the leak check: no container process, cgroup or directory left
    end)
  end

  it("runs a recipe first with -i, its globals at hand", function()
    local recipe = os.tmpname()
    local f = assert(io.open(recipe, "w"))
    f:write("greeting = 'from the recipe'\nreturn 7\n")
    f:close()
    local term = helper.start_pty { helper.lbox, "-i", recipe }
    assert.is_true(wait_for(term, "> "))
    type_line(term, "greeting, _\n", '"from the recipe"\t7')
    core.write(term.master, "\4")
    assert.are.equal(0, helper.finish_pty(term))
    os.remove(recipe)
  end)

  it("reads plain lines when its input is not a terminal", function()
    local r = helper.lbox_run({}, { stdin = "x = 1 +\n2\nx\nlbox.container{command={'true'}}:start():wait().exit_code\n" })
    assert.are.equal(0, r.code, r.err)
    assert.matches("> >> > 3\n> 0\n", r.out)
  end)
end)
