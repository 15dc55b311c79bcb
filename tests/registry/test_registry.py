import pytest
import torch
from fvcore.common.config import CfgNode as CN

import registry
from registry import Registry, build


def test_every_registry_states_its_contract():
    for reg in registry.ALL_REGISTRIES:
        assert reg.__doc__ and "Called as" in reg.__doc__, reg.name


def test_duplicate_name_is_an_error_naming_both_places():
    reg = Registry("THINGS")

    @reg.register()
    def thing(node):
        return node

    with pytest.raises(ValueError, match="already registered"):
        reg.register(thing)


def test_register_under_a_given_name_keeps_the_function_name():
    reg = Registry("THINGS")

    @reg.register(name="Thing")
    def build_thing(node):
        return node

    def build_other(node):
        return node

    reg.register(build_other, name="Other")
    assert reg.names() == ["Other", "Thing"]
    assert reg.get("Thing") is build_thing and build_thing.__name__ == "build_thing"
    with pytest.raises(ValueError, match=r"THINGS: the name 'Thing' is already registered by .*build_thing"):
        reg.register(build_other, name="Thing")


def test_unknown_name_lists_registered_names_and_how_plugins_load():
    reg = Registry("THINGS")

    @reg.register()
    def alpha(node):
        return 1

    with pytest.raises(KeyError) as exc:
        reg.get("beta")
    message = str(exc.value)
    assert "alpha" in message and "--plugin" in message and "avplug.plugins" in message and "PLUGINS" in message


def test_build_reads_name_and_type_checks():
    reg = Registry("MODULES")

    @reg.register()
    def Lin(node, n_in):
        return torch.nn.Linear(n_in, node.DIM)

    @reg.register()
    def NotAModule(node, n_in):
        return "oops"

    node = CN({"NAME": "Lin", "DIM": 3})
    module = build(reg, node, 5, expected_type=torch.nn.Module)
    assert module.out_features == 3
    node.NAME = "NotAModule"
    with pytest.raises(TypeError, match="NotAModule"):
        build(reg, node, 5, expected_type=torch.nn.Module)


def test_builtins_are_registered_by_one_function():
    from avplug.builtin_plugins import register_builtins

    register_builtins()
    assert "CrossModalNCE" in registry.LOSSES.names()
    assert "R2Plus1D18" in registry.BACKBONES.names()
    assert "HierarchicalSampler" in registry.SAMPLERS.names()
