--- --init: a small init as the container's PID 1, as docker's (tini). It
-- runs the command as its child, passes the signals it gets on to it, reaps
-- every process that ends in the container (orphans are re-parented to it),
-- and exits as the command did: its exit code, or 128 + the signal that
-- killed it. Runs in the container's init, as its last step, in place of exec.
local core = require "lbox.core"
local errors = require "lbox.errors"
local exec = require "lbox.exec"

local M = {}

-- Passed on to the command; the others either cannot be caught or are the
-- kernel's to a faulting process.
M.FORWARDED = { core.SIGHUP, core.SIGINT, core.SIGQUIT, core.SIGUSR1, core.SIGUSR2, core.SIGTERM,
                core.SIGALRM, core.SIGWINCH, core.SIGCONT, core.SIGTSTP, core.SIGTTIN, core.SIGTTOU }

local function report_and_exit(e)
  local message = errors.is_user_error(e) and e.message or tostring(e)
  io.stderr:write("lbox: error: ", message, "\n")
  io.stderr:flush()
  core._exit(errors.is_user_error(e) and e.code or errors.codes.lbox)
end

--- Run `command` (argv) with `env` as the child of this process, which must
-- be PID 1. Never returns.
function M.run(command, env)
  -- none of lbox's descriptors (all close-on-exec, and this process does
  -- not exec); closing the error pipe tells lbox the container runs
  core.close_range(3)
  local watched = { core.SIGCHLD, table.unpack(M.FORWARDED) }
  -- blocked before the fork: a signal between it and the loop waits in the queue
  local ok, err = pcall(function()
    errors.try("cannot block signals", core.sigmask("block", watched))
    return errors.try("cannot watch signals", core.signalfd(watched))
  end)
  if not ok then report_and_exit(err) end
  local sigfd = err
  local child = core.clone(0)
  if child == 0 then
    core.close(sigfd)
    core.sigmask("set", {})
    local _, failure = pcall(exec.execvp, command, env)
    report_and_exit(failure)
  end
  if not child then report_and_exit("cannot start the command") end
  while true do
    core.poll({ sigfd }, -1)
    for sig in function() return core.read_signal(sigfd) end do
      if sig == core.SIGCHLD then
        -- every ended process: the command, and orphans of the container
        while true do
          local pid, how, code = core.waitpid(-1, "nohang")
          if not pid or pid == 0 then break end
          if pid == child and how ~= "stopped" then
            core._exit(how == "exited" and code or errors.codes.signal_base + code)
          end
        end
      else
        core.kill(child, sig)
      end
    end
  end
end

return M
