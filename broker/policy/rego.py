"""The in-process decision point: Rego evaluated by regopy (rego-cpp).

regopy 1.5.2 has traps this module exists to contain (docs/ARCHITECTURE.md, traps):

* a plain query prints ``undefined`` for both a false and an undefined
  result, the output object is always truthy and ``ok()`` is true for
  undefined, so we only ever run a *binding* query
  (``decision := data.ixb.sharing.decision``) and treat a missing binding as
  undefined;
* calling ``expressions()`` on an undefined result aborts the process, so we
  never call it;
* the interpreter and an output object must outlive the reading of their
  results, so both are held in locals until the result is converted;
* ``regopy.Input`` passes every Python int to rego-cpp as a signed 64-bit
  integer, silently modulo 2**64: an evaluation time of 2**64 plus a valid
  instant became that valid instant and allowed what an OPA server (exact
  integers, as JSON has them) refused as expired. So the input goes over as
  JSON text (``set_input_term``), which rego-cpp parses exactly.

Anything that is not a well-formed decision raises PolicyUndecided.
"""

from __future__ import annotations

import json
import threading

import regopy

from broker.domain.decisions import Decision, DecisionInput
from broker.errors import ConfigurationError, PolicyUndecided
from broker.policy.bundle import PolicyBundle
from broker.policy.contract import DECISION_PACKAGE, DECISION_RULE, decision_from_result

DECISION_QUERY = f"decision := data.{DECISION_PACKAGE}.{DECISION_RULE}"


class RegoDecisionPoint:
    """Evaluates one bundle; build a new one to change policy."""

    __slots__ = ("_bundle", "_interpreter", "_lock")

    def __init__(self, bundle: PolicyBundle) -> None:
        self._bundle = bundle
        self._lock = threading.Lock()  # one interpreter, one evaluation at a time
        interpreter = regopy.Interpreter()
        for name, source in bundle.modules.items():
            try:
                interpreter.add_module(name, source)
            except Exception as exc:  # regopy raises its own RegoError
                raise ConfigurationError(f"{name}: Rego module does not compile") from exc
        try:
            interpreter.add_data(bundle.data())
        except Exception as exc:
            raise ConfigurationError("agreement data cannot be loaded into Rego") from exc
        self._interpreter = interpreter
        self._self_check()

    @property
    def bundle_hash(self) -> str:
        return self._bundle.content_hash

    def decide(self, decision_input: DecisionInput) -> Decision:
        raw = self._evaluate(decision_input.model_dump(mode="json"))
        return decision_from_result(raw, self.bundle_hash)

    def _evaluate(self, document: dict[str, object]) -> object:
        with self._lock:
            interpreter = self._interpreter
            try:
                interpreter.set_input_term(json.dumps(document))  # not regopy.Input: see above
                output = interpreter.query(DECISION_QUERY)
            except Exception as exc:
                raise PolicyUndecided(f"rego evaluation failed ({type(exc).__name__})") from exc
            if not output.ok():
                raise PolicyUndecided("rego evaluation reported an error")
            results = output.results
            bindings = results[0].bindings if len(results) == 1 else {}
            if "decision" not in bindings:
                raise PolicyUndecided("the policy left the decision undefined")
            return bindings["decision"]

    def _self_check(self) -> None:
        """Fail at load, not on the first message, if the modules do not compile."""
        probe = DecisionInput(
            origin="ZZ",
            recipient="ZY",
            report_type="other",
            marking="TLP:CLEAR",
            handling_code="H0",
            now_s=0,
        )
        try:
            self.decide(probe)
        except PolicyUndecided as exc:
            raise ConfigurationError(
                f"policy bundle {self.bundle_hash[:19]} does not produce a decision: {exc}"
            ) from exc
