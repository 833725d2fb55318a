<div id="${id}" class="helloworld">
  <h3>Hello World</h3>
  <ul></ul>
</div>
