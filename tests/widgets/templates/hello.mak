## A template as the original Moksha's widgets wrote them: Mako, ${...} and w.
<div id="${id}" class="greeting">
  Hello, ${w.name}! You are visitor ${count}.
  % for item in items:
  <span>${item}</span>
  % endfor
  <div class="inner">${inner}</div>
</div>
