import pytest

from avplug.config import ConfigError, load_config, write_config
from avplug.config.cli import exits_on_user_error


def test_movie_tv_is_the_papers_recipe():
    cfg = load_config("movie_tv.yaml")
    assert (cfg.DATA.SNIPPET_FRAMES, cfg.DATA.FPS, cfg.DATA.SNIPPET_SECONDS) == (16, 5.0, 3.2)
    assert (cfg.INPUT.VIDEO.SHORT_SIDE, cfg.INPUT.VIDEO.CROP) == (190, 158)
    assert (cfg.INPUT.AUDIO.MEL_BINS, cfg.INPUT.AUDIO.N_FFT, cfg.INPUT.AUDIO.HOP, cfg.DATA.AUDIO_RATE) == (96, 2048, 512, 48000)
    assert cfg.INPUT.AUDIO.DROP_FRACTION == 0.25
    assert (cfg.SAMPLER.K, cfg.SAMPLER.WINDOW) == (16, 0)
    assert (cfg.MODEL.VIDEO.NAME, cfg.MODEL.AUDIO.NAME, cfg.MODEL.HEAD.DIM) == ("R2Plus1D18", "AudioResNet18", 512)
    assert (cfg.LOSS.NAME, cfg.LOSS.NORMALIZE) == ("CrossModalNCE", False)
    s = cfg.SOLVER
    assert (s.OPTIMIZER, s.BASE_LR, s.WARMUP_START_LR, s.WARMUP_EPOCHS, s.MAX_EPOCHS, s.BATCH_SIZE) == ("Adam", 0.002, 1e-4, 1.0, 10, 512)
    assert cfg.DATA.HELDOUT_FRACTION == 0.1
    assert cfg.is_frozen()


def test_demo_inherits_movie_tv_and_shrinks_it():
    cfg = load_config("demo.yaml")
    assert cfg.LOSS.NAME == "CrossModalNCE"  # from the base
    assert cfg.MODEL.VIDEO.WIDTH < 1 and cfg.SOLVER.BATCH_SIZE % cfg.SAMPLER.K == 0


def test_overrides_apply_and_unknown_keys_are_refused():
    cfg = load_config("demo.yaml", ["SAMPLER.K", "8", "SAMPLER.WINDOW", "16"])
    assert (cfg.SAMPLER.K, cfg.SAMPLER.WINDOW) == (8, 16)
    with pytest.raises(ConfigError, match="NOT_A_KEY"):
        load_config("demo.yaml", ["SAMPLER.NOT_A_KEY", "1"])


@pytest.mark.parametrize(
    "opts, key",
    [
        (["SAMPLER.K", "-1"], "SAMPLER.K"),
        (["SAMPLER.K", "4", "SAMPLER.WINDOW", "2"], "SAMPLER.WINDOW"),
        (["INPUT.VIDEO.CROP", "300"], "INPUT.VIDEO.CROP"),
        (["SOLVER.BATCH_SIZE", "30"], "SOLVER.BATCH_SIZE"),
        (["SOLVER.AMP", "fp8"], "SOLVER.AMP"),
        (["INPUT.AUDIO.DROP_FRACTION", "1.5"], "INPUT.AUDIO.DROP_FRACTION"),
        (["DATA.HELDOUT_FRACTION", "1.0"], "DATA.HELDOUT_FRACTION"),
    ],
)
def test_impossible_values_are_refused_naming_the_key(opts, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("demo.yaml", opts)


def test_batch_must_divide_over_the_world():
    with pytest.raises(ConfigError, match="world size 3"):
        load_config("demo.yaml", world_size=3)
    with pytest.raises(ConfigError, match="whole groups"):
        load_config("demo.yaml", ["SOLVER.BATCH_SIZE", "16", "SAMPLER.K", "8"], world_size=4)
    load_config("demo.yaml", ["SOLVER.BATCH_SIZE", "16", "SAMPLER.K", "8", "SAMPLER.SPREAD_GROUPS", "True"], world_size=4)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("demo.yaml", ["SAMPLER.K", "8"])
    path = write_config(cfg, tmp_path)
    again = load_config(path)
    assert again.SAMPLER.K == 8 and again.dump() == cfg.dump()


def test_unknown_recipe_lists_shipped_ones():
    with pytest.raises(ConfigError, match="movie_tv.yaml"):
        load_config("no_such_recipe.yaml")


def test_a_tool_main_turns_a_config_error_into_one_line_and_status_2(capsys):
    @exits_on_user_error("tool.py")
    def main(argv=None) -> int:
        load_config("demo.yaml", list(argv))
        return 0

    assert main(["SEED", "1"]) == 0
    assert main(["NOT_A_KEY", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tool.py: ") and "NOT_A_KEY" in err and err.count("\n") == 1
