"""The one graph shape aigw's dashboards use: its unit in the title and on the axis, from zero unless told."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch


def graph(
    title: str,
    unit: str,
    left: Sequence[cloudwatch.IMetric],
    *,
    right: Sequence[cloudwatch.IMetric] = (),
    right_unit: str | None = None,
    minimum: float | None = 0,
    maximum: float | None = None,
    annotations: Sequence[cloudwatch.HorizontalAnnotation] = (),
    view: cloudwatch.GraphWidgetView = cloudwatch.GraphWidgetView.TIME_SERIES,
    width: int = 8,
    height: int = 6,
) -> cloudwatch.GraphWidget:
    """`title (unit)`; a right axis, if any, in `right_unit` (named in the title too)."""
    units = unit if right_unit is None else f"{unit} and {right_unit}"
    return cloudwatch.GraphWidget(
        title=f"{title} ({units})",
        left=list(left),
        right=list(right) or None,
        left_y_axis=cloudwatch.YAxisProps(label=unit, min=minimum, max=maximum, show_units=False),
        right_y_axis=cloudwatch.YAxisProps(label=right_unit, min=0, show_units=False) if right_unit else None,
        left_annotations=list(annotations) or None,
        view=view,
        width=width,
        height=height,
    )
