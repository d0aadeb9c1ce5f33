"""The ``rest_provider`` translation stage: Qiskit's translation, plus what the Target demands.

Registered under the ``qiskit.transpiler.translation`` entry-point group as ``rest_provider``;
:meth:`RestBackend.get_translation_stage_plugin` returns that name, so
``generate_preset_pass_manager(backend=backend)`` and ``transpile(circuit, backend)`` use it with
no extra argument. Elsewhere, ask for it by name::

    from qiskit.transpiler import generate_preset_pass_manager

    pm = generate_preset_pass_manager(3, target=target, translation_method="rest_provider")
    isa_circuit = pm.run(circuit)

What it adds to Qiskit's default translation (``translation_method="translator"``), each a case
where the default output (or the default run) fails
:meth:`Target.instruction_supported <qiskit.transpiler.Target.instruction_supported>`:

1. **Angle bounds for every rotation gate.** Qiskit enforces ``angle_bounds`` through
   :class:`~qiskit.transpiler.passes.WrapAngles`, whose default registry knows only ``rzz`` (in
   Qiskit 2.6; providers may register more process-wide) and which raises
   ``KeyError: "Name 'rx' not in WrapAngleRegistry"`` for a Target with, say, fractional ``rx`` in
   [0, π]; and its built-in ``rzz`` rule assumes IBM's [0, π/2], so for other ``rzz`` bounds its
   *output* still fails ``instruction_supported``. This plugin gives ``WrapAngles`` a per-Target
   registry covering ``rx``, ``ry``, ``rz``, ``p``, ``u1``, ``rxx``, ``ryy``, ``rzz``, ``rzx`` for
   any bounds, with exact identities (periodicity, reflection by a Pauli, complement, splitting;
   see :mod:`.angles`) and Paulis written with gates the Target accepts, and replaces any other
   bounded gate that is out of range by its unitary for re-synthesis.
2. **Gates available only on some qubits or in one direction.** Qiskit's ``GateDirection`` flips
   only a fixed list of gates and raises ``TranspilerError("... would be supported ... if the
   direction was swapped, but no rules are known to do that")`` when the flip needs gates the
   Target lacks (for example an input ``ecr`` on the wrong pair of a Target where ``h`` and ``x``
   are not available everywhere). Before translating, :class:`.LocalizeUnsupportedGates` swaps the
   qubits of symmetric gates and turns any other gate the Target knows, but not on those qubits,
   into a unitary that :class:`~qiskit.transpiler.passes.UnitarySynthesis` synthesizes for the
   gates and direction those qubits do have.
3. **A final check on each instruction's qubits and angles**, after a repair round (localize,
   re-synthesize, translate, wrap angles) that runs only when something is still off. Whatever
   the Target still rejects is logged and recorded in ``property_set["rest_unsupported"]``,
   naming the instruction and physical qubits, instead of surfacing later as a rejected job.

The plugin is instantiated by Qiskit (with no arguments) on every preset pass-manager build, so
this module imports only Qiskit transpiler modules that are already loaded at that point, and all
work happens in :meth:`RestTranslationPlugin.pass_manager`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qiskit.transpiler.passmanager import PassManager
from qiskit.transpiler.preset_passmanagers.plugin import PassManagerStagePlugin

if TYPE_CHECKING:
    from qiskit.transpiler import Target
    from qiskit.transpiler.passmanager_config import PassManagerConfig

PLUGIN_NAME = "rest_provider"
"""The entry-point name under ``qiskit.transpiler.translation``."""


class RestTranslationPlugin(PassManagerStagePlugin):
    """Translation stage for Qiskit-Runtime-REST backends (see the module docstring)."""

    def pass_manager(
        self, pass_manager_config: PassManagerConfig, optimization_level: int | None = None
    ) -> PassManager:
        """Build the translation stage for ``pass_manager_config``.

        Args:
            pass_manager_config: the preset pass manager's configuration (target, basis gates,
                synthesis options).
            optimization_level: the preset level (unused: the stage is the same at every level).

        Returns:
            Qiskit's standard translation wrapped in this plugin's Target fix-ups.
        """
        return translation_pass_manager(pass_manager_config)


def translation_pass_manager(config: PassManagerConfig) -> PassManager:
    """Return the ``rest_provider`` translation stage for ``config`` (see the module docstring)."""
    from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
    from qiskit.transpiler import ConditionalController
    from qiskit.transpiler.passes import (
        BasisTranslator,
        GatesInBasis,
        UnitarySynthesis,
        WrapAngles,
    )
    from qiskit.transpiler.preset_passmanagers import common

    from .angles import build_registry
    from .passes import LocalizeUnsupportedGates, ReportUnsupportedInstructions

    target: Target | None = config.target
    standard = common.generate_translation_passmanager(
        target=target,
        basis_gates=config.basis_gates,
        approximation_degree=config.approximation_degree,
        coupling_map=config.coupling_map,
        unitary_synthesis_method=config.unitary_synthesis_method,
        unitary_synthesis_plugin_config=config.unitary_synthesis_plugin_config,
        hls_config=config.hls_config,
        qubits_initially_zero=config.qubits_initially_zero,
    )
    if target is None or not target.operation_names:
        return standard  # no Target: nothing beyond names to enforce

    registry, _unhandled = build_registry(target)
    tasks = []
    for task in standard.to_flow_controller().tasks:
        if isinstance(task, WrapAngles):
            task = WrapAngles(target, registry)
        tasks.append(task)

    # Re-synthesis for what the standard stage left unsupported (localized gates, unitaries from
    # bounded gates without known identities), then angle wrapping again for what it produced.
    repair = [
        UnitarySynthesis(
            config.basis_gates,
            approximation_degree=config.approximation_degree,
            coupling_map=config.coupling_map,
            plugin_config=config.unitary_synthesis_plugin_config,
            method=config.unitary_synthesis_method,
            target=target,
        ),
        BasisTranslator(SessionEquivalenceLibrary, config.basis_gates, target),
    ]
    if target.has_angle_bounds():
        repair.append(WrapAngles(target, registry))
        repair.append(BasisTranslator(SessionEquivalenceLibrary, config.basis_gates, target))

    def _needs_repair(property_set) -> bool:
        return not property_set["all_gates_in_basis"]

    pm = PassManager()
    pm.append(GatesInBasis(config.basis_gates, target=target))
    pm.append(ConditionalController(LocalizeUnsupportedGates(target), condition=_needs_repair))
    pm.append(tasks)
    pm.append(GatesInBasis(config.basis_gates, target=target))
    pm.append(
        ConditionalController([LocalizeUnsupportedGates(target), *repair], condition=_needs_repair)
    )
    pm.append(GatesInBasis(config.basis_gates, target=target))
    pm.append(ReportUnsupportedInstructions(target))
    return pm
