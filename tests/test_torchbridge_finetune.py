"""Fine-tuning by distillation: it lowers the loss, resumes exactly, refuses bad recipes."""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402

from sims.schema import check  # noqa: E402
from torchbridge.finetune import Recipe, epoch_order, finetune  # noqa: E402
from torchbridge.oracle import output_distance  # noqa: E402


def _pair() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    """A small CNN (the reference), a perturbed copy of it (the student), 20 images."""
    torch.manual_seed(0)
    reference = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip
    student = copy.deepcopy(reference)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return reference, student, torch.randn(20, 3, 8, 8, generator=torch.Generator().manual_seed(1))


RECIPE = Recipe(epochs=3, lr=3e-3, schedule="cosine", batch=8, weight_decay=0.01, seed=4)


def test_the_distillation_loss_falls_and_batch_norms_stay_frozen():
    reference, student, x = _pair()
    stats = student[1].running_mean.clone()
    with torch.no_grad():
        before = float(output_distance(student(x), reference(x), "kl").mean())
    losses = finetune(student, reference, x, Recipe(epochs=20, lr=1e-2, batch=8))
    with torch.no_grad():
        after = float(output_distance(student(x), reference(x), "kl").mean())
    assert len(losses) == 20 and losses[-1] < 0.5 * losses[0]
    assert after < 0.5 * before
    assert torch.equal(student[1].running_mean, stats) and not student.training


@pytest.mark.parametrize("every, stop", [(1, 4), (3, 5), (2, 7)])
def test_a_run_resumed_after_a_kill_ends_as_an_uninterrupted_one(tmp_path, every, stop):
    """Killed after ``stop`` steps (the checkpoint written every ``every``), then rerun: the
    weights, and the epochs' losses, equal those of one uninterrupted run (CPU,
    deterministic)."""
    torch.use_deterministic_algorithms(True)
    try:
        reference, student, x = _pair()
        start = copy.deepcopy(student)
        whole = finetune(student, reference, x, RECIPE)

        def kill(step: int, _loss: float) -> None:
            if step == stop:
                raise KeyboardInterrupt

        resumed, path = copy.deepcopy(start), tmp_path / "checkpoint.pt"
        with pytest.raises(KeyboardInterrupt):
            finetune(resumed, reference, x, RECIPE, checkpoint=path, every=every, on_step=kill)
        again = copy.deepcopy(start)  # a new process: the network as it was before
        steps = []
        tail = finetune(again, reference, x, RECIPE, checkpoint=path, every=every,
                        on_step=lambda step, _: steps.append(step))  # fmt: skip
        assert steps[0] == stop - stop % every + 1 and steps[-1] == 9
        assert tail == whole
        for a, b in zip(student.state_dict().values(), again.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        # finished: a rerun takes no step and leaves the weights as they are
        finetune(again, reference, x, RECIPE, checkpoint=path, on_step=lambda *_: 1 / 0)
        assert torch.equal(again[0].weight, student[0].weight)
    finally:
        torch.use_deterministic_algorithms(False)


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    reference, student, x = _pair()
    path = tmp_path / "checkpoint.pt"
    finetune(student, reference, x, Recipe(epochs=1, batch=8), checkpoint=path)
    with pytest.raises(ValueError, match="not a checkpoint of this fine-tuning"):
        finetune(student, reference, x, Recipe(epochs=2, batch=8), checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a fine-tuning checkpoint"):
        finetune(student, reference, x, Recipe(epochs=1, batch=8), checkpoint=path)


def test_labels_weigh_the_cross_entropy():
    """With labels and weight 1 the first step's loss is the cross-entropy of the first
    batch; without labels the weight is unused (the KL)."""
    reference, student, x = _pair()
    y = torch.arange(20) % 5
    first = epoch_order(20, 0, 0)[:8]
    with torch.no_grad():
        cross = float(functional.cross_entropy(student(x[first]), y[first]))
        kl = float(output_distance(student(x[first]), reference(x[first]), "kl").mean())
    seen = []
    recipe = Recipe(epochs=1, batch=8, labels=1.0)
    finetune(copy.deepcopy(student), reference, x, recipe, labels=y,
             on_step=lambda _, loss: seen.append(loss))  # fmt: skip
    finetune(copy.deepcopy(student), reference, x, recipe,
             on_step=lambda _, loss: seen.append(loss))  # fmt: skip
    assert seen[0] == pytest.approx(cross, rel=1e-5)
    assert seen[3] == pytest.approx(kl, rel=1e-5)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"schedule": "step"}, "schedule"),
        ({"batch": 0}, "batch"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"labels": 1.5}, "labels"),
        ({"seed": -1}, "seed"),
        ({"momentum": 0.9}, "momentum"),
    ],
)
def test_bad_recipe_values_are_refused_naming_the_field(given, message):
    with pytest.raises(ValueError, match=message):
        check(Recipe, given, "finetune")


def test_bad_images_labels_and_every_are_refused():
    reference, student, x = _pair()
    with pytest.raises(ValueError, match=r"images must be a batch \(B, C, H, W\)"):
        finetune(student, reference, x[0])
    with pytest.raises(ValueError, match=r"labels must be \(20,\)"):
        finetune(student, reference, x, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="every must be a whole number"):
        finetune(student, reference, x, every=0)


@pytest.mark.slow
def test_the_finetune_command_writes_a_model_eval_reads_and_resumes(tmp_path, capsys):
    """prune, then finetune the pruned model against the network's weights: report.json holds
    the held-out measures before (those prune reported) and after, and the epochs' losses;
    eval reads the fine-tuned pruned.pt; a rerun finds the finished checkpoint and takes no
    step; --labels without the network's classes is refused."""
    from image_folder import image_folder

    from torchbridge.__main__ import main
    from torchbridge.models import build, load_pruned

    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pt"
    torch.save(build("resnet18").state_dict(), weights)
    data = image_folder(tmp_path / "data")
    images = ["--data", str(data), "--size", "32", "--images", "6", "--test-images", "4"]
    pruned, tuned = tmp_path / "pruned", tmp_path / "tuned"
    assert main(["prune", "--arch", "resnet18", "--weights", str(weights), *images,
                 "--keep", "0.5", "--out", str(pruned)]) == 0  # fmt: skip
    tune = ["finetune", "--model", str(pruned / "pruned.pt"), "--weights", str(weights), *images,
            "--epochs", "2", "--batch", "4", "--lr", "1e-3", "--out", str(tuned)]  # fmt: skip
    assert main(tune) == 0
    assert "epoch losses" in capsys.readouterr().out
    before = json.loads((pruned / "report.json").read_text())["after"]
    report = json.loads((tuned / "report.json").read_text())
    assert report["arch"] == "resnet18" and report["recipe"]["epochs"] == 2
    assert len(report["losses"]) == 2 and report["data"]["images"] == 6
    assert report["before"]["kl"] == pytest.approx(before["kl"], rel=1e-5)
    assert report["after"]["kl"] != pytest.approx(before["kl"], rel=1e-5)
    assert report["after"]["params"] == before["params"] and "commit" in report
    first = load_pruned(tuned / "pruned.pt").state_dict()
    assert main(["eval", "--model", str(tuned / "pruned.pt"), *images]) == 0
    assert json.loads(capsys.readouterr().out)["flops"] == before["flops"]
    assert main(tune) == 0  # finished: resumed at its last step
    again = load_pruned(tuned / "pruned.pt").state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert main([*tune[:-1], str(tmp_path / "labels"), "--labels", "0.5"]) == 2
    assert "--labels weighs the labels' cross-entropy" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's choices
        main([*tune, "--schedule", "step"])
    assert "invalid choice: 'step'" in capsys.readouterr().err
    assert main([*tune, "--lr", "2"]) == 2
    assert "lr" in capsys.readouterr().err
