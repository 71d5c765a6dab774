--- What confines a container's processes, in the order its init (and
-- exec) applies it: a session keyring of its own, no_new_privs, the
-- seccomp filter, the bounding set, then (after the user is set) the
-- other capability sets. A Lua payload gets all of it, as a program does.
local capabilities = require "lbox.capabilities"
local core = require "lbox.core"
local errors = require "lbox.errors"

local M = {}

local try = errors.try

--- A new anonymous session keyring, so that the keys of the session lbox
-- runs in are not the container's. Before seccomp, which refuses keyctl;
-- without keyrings (or over root's key quota) the command keeps lbox's,
-- as runc does when it may not.
function M.new_keyring()
  core.new_session_keyring()
end

--- Set no_new_privs when the spec asks for it.
function M.no_new_privileges(spec)
  if spec.no_new_privileges then try("cannot set no_new_privs", core.set_no_new_privs()) end
end

--- Load the seccomp `program` (lbox.spec.plan's; nil: unconfined).
-- Without no_new_privs this needs CAP_SYS_ADMIN: so before the user and
-- capability steps give it up; those use only calls every docker profile allows (setgroups, setuid,
-- capset, prctl, rt_sigaction, execve).
function M.seccomp(program)
  if program then
    try("cannot load the seccomp filter", core.seccomp_load_bpf(program))
  end
end

--- Drop from the bounding set what the container may not have, and
-- clear the ambient set. While still root with every capability, so that
-- the user step can change ids even when CAP_SETUID is not kept.
function M.bounding_set(spec)
  try("cannot drop capabilities", core.limit_capabilities(capabilities.numbers(spec.capabilities)))
end

--- Effective and permitted: the container's capabilities, for root; none
-- for another user (what execve as that user leaves). Inheritable: none,
-- as docker since 23.0, so no file's inheritable bits bring any back.
function M.capabilities(spec)
  local current = try("cannot read capabilities", core.capget())
  local held = {}
  for _, cap in ipairs(current.permitted) do held[cap] = true end
  local keep = {}
  for _, cap in ipairs(capabilities.numbers(spec.capabilities)) do
    if held[cap] then keep[#keep + 1] = cap end
  end
  try("cannot set capabilities", core.capset(keep, keep, {}))
end

return M
