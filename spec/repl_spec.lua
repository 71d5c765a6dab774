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

  -- The REPL three ways: on a terminal with readline, on a terminal without
  -- it (lua-readline out of Lua's path, as on a machine without the package),
  -- and with no terminal at all (pipes).
  local NO_READLINE = "LUA_PATH_5_4=" .. helper.root .. "/no-such-dir/?.lua"
  local function on_terminal(argv)
    local term = helper.start_pty(argv)
    return {
      term = term,
      write = function(text) core.write(term.master, text) end,
      wait_for = function(pattern) return wait_for(term, pattern) end,
      eof = function() core.write(term.master, "\4") end,
      finish = function() return helper.finish_pty(term) end,
    }
  end
  local sessions = {
    { "on a terminal", function() return on_terminal { helper.lbox } end },
    { "on a terminal without readline", function()
      local session = on_terminal { "/usr/bin/env", NO_READLINE, helper.lbox }
      assert.is_true(session.wait_for("no line editing"), screen(session.term))
      return session
    end },
    { "without a terminal", function()
      local proc = helper.start({ helper.lbox }, { keep_stdin = true })
      local output = ""
      local session = { proc = proc }
      function session.write(text) core.write(proc.in_fd, text) end
      function session.wait_for(pattern)
        for _ = 1, 200 do
          if output:find(pattern) then return true end
          local ready = core.poll({ proc.out_fd }, 100)
          local data = ready[proc.out_fd] and core.read(proc.out_fd, 4096)
          if data == "" then return output:find(pattern) ~= nil end
          output = output .. (data or "")
        end
        return output:find(pattern) ~= nil
      end
      function session.eof()
        core.close(proc.in_fd)
        proc.in_fd = nil
      end
      function session.finish()
        if proc.in_fd then core.close(proc.in_fd) end
        return helper.finish(proc, 10).code
      end
      return session
    end },
  }

  local endings = {
    { "Ctrl-D", function(session) session.eof() end },
    { "os.exit", function(session) session.write("os.exit(3)\n") end, 3 },
    { "SIGTERM", function(session) core.kill((session.term or session.proc).pid, core.SIGTERM) end, 0 },
    { "SIGHUP", function(session) core.kill((session.term or session.proc).pid, core.SIGHUP) end, 0 },
    { "a hangup (its terminal closes)", function(session)
      -- the terminal goes away: its session gets SIGHUP, its reads fail
      core.close(session.term.master)
      session.term.master = assert(core.open("/dev/null"))
    end, 0, "terminal only" },
  }

  for _, way in ipairs(sessions) do
    for _, ending in ipairs(endings) do
      if not (ending[4] and way[1] == "without a terminal") then
        it(way[1] .. ", removes the containers it started when it ends by " .. ending[1], function()
          local session = way[2]()
          assert.is_true(session.wait_for("> "))
          -- a container that came and went first: its end unblocks the ending signals
          session.write("lbox.run{command={'true'}}\n"
            .. "box = lbox.container{command={'sleep','60'}, limits={pids=10}}:start()\nbox\n")
          assert.is_true(session.wait_for("%(running%)"))
          assert.are.equal(1, #helper.snapshot().containers)
          ending[2](session)
          assert.are.equal(ending[3] or 0, session.finish())
          -- the leak check: no container process, cgroup or directory left
        end)
      end
    end
  end

  it("without a terminal, still leaves cleanly on SIGTERM after a container came and went", function()
    local session = sessions[3][2]()
    assert.is_true(session.wait_for("> "))
    session.write("lbox.run{command={'true'}}.exit_code\n")
    assert.is_true(session.wait_for("> 0\n> "))
    core.kill(session.proc.pid, core.SIGTERM)
    assert.is_true(session.wait_for("lbox: signal 15: leaving"))
    assert.are.equal(0, session.finish())
  end)

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
