-- Argo CD health for training.deepspeech.dev/DeepSpeechTraining (Lua 5.1; only base functions are used).
-- The operator follows kstatus: observedGeneration, Ready/Reconciling/Stalled (docs/gitops.md).
--   Stalled=True                 -> Degraded   (terminal failure or invalid spec)
--   Ready=True, reason Suspended -> Suspended  (spec.suspend and the pods are gone)
--   Ready=True                   -> Healthy    (succeeded, or a finished dry run)
--   anything else                -> Progressing (validating, queued, running, retrying, preempted, suspending)
-- A generation the operator has not observed yet is Progressing, so a retraining commit never shows the
-- previous run's result as the health of the new spec.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }

local function find(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then return c end
  end
  return nil
end

local function text(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then return c.message end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then return c.reason end
  return default
end

local suspend = obj.spec ~= nil and obj.spec.suspend == true
local st = obj.status
if st == nil then
  if suspend then
    hs.status = "Suspended"
    hs.message = "Suspended before the first run"
  end
  return hs
end

local gen = obj.metadata.generation
if gen ~= nil and (st.observedGeneration == nil or st.observedGeneration < gen) then
  hs.message = "Generation " .. tostring(gen) .. " not yet observed by the operator"
  return hs
end

local conditions = st.conditions or {}
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled")
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  if ready.reason == "Suspended" then
    hs.status = "Suspended"
  else
    -- Also when spec.suspend is set on a finished run: there is nothing left to suspend.
    hs.status = "Healthy"
  end
  hs.message = text(ready, hs.status)
  return hs
end

if suspend then
  hs.message = "Suspending: " .. text(ready, "checkpointing and removing the Job")
else
  hs.message = text(ready, hs.message)
end
return hs
