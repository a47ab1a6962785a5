"""URL routes of the e2e Django project."""

from __future__ import annotations

from django.urls import path

from django_project import views

urlpatterns = [
    path("", views.home),
    path("form/", views.form),
    path("stream/", views.stream),
    path("items/<int:item_id>/", views.item),
]
